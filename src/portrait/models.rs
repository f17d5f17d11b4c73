//! The face models: YuNet (detector) and the 3DDFA_V2 MobileNet-0.5 regressor, either built
//! into the plugin (`models/face/` of the source tree) or loaded from a directory (the
//! element's `face-models` property, `<model pack>/face`, or `$DAWN_FACE_MODELS`).

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::engine::files;
use crate::engine::runtime::{Graph, Runtime};

/// YuNet with a dynamic input size (preferred: the image keeps its aspect ratio).
pub const YUNET_DYNAMIC: &str = "yunet_s_dynamic.onnx";
/// YuNet with a fixed 640×640 input (used when the dynamic file is absent; letterboxed input).
pub const YUNET_FIXED: &str = "yunet_s_640_640.onnx";
/// 3DDFA_V2 MobileNet-0.5, 120×120 BGR input → `param` `[N, 62]`, `lm_aux` `[N, 136]`.
pub const TDDFA: &str = "tddfa_v2_mb05_120x120.onnx";
/// The 62 means and standard deviations that de-normalise `param`.
pub const TDDFA_MEAN_STD: &str = "tddfa_param_mean_std_62.json";

/// The environment variable naming a default face-model directory.
pub const FACE_MODELS_ENV: &str = "DAWN_FACE_MODELS";

/// Number of 3DDFA parameters: 12 camera (3×4, row-major) + 40 shape + 10 expression.
pub const PARAM_COUNT: usize = 62;

/// The files of `models/face/`, compiled into the plugin: a GStreamer plugin is installed as
/// one shared library, and a folder beside it would be easy to lose.
mod builtin {
    pub const YUNET: &[u8] = include_bytes!("../../models/face/yunet_s_dynamic.onnx");
    pub const TDDFA: &[u8] = include_bytes!("../../models/face/tddfa_v2_mb05_120x120.onnx");
    pub const MEAN_STD: &str = include_str!("../../models/face/tddfa_param_mean_std_62.json");
}

/// Where face models come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaceModelSource {
    /// A directory holding the files named above.
    Dir(PathBuf),
    /// The models compiled into the plugin.
    Builtin,
}

impl FaceModelSource {
    /// The models to use: `explicit` (the `face-models` property) when given, else
    /// `<pack>/face` when that directory exists, else `$DAWN_FACE_MODELS` when set, else the
    /// built-in models.
    pub fn locate(explicit: Option<&Path>, pack: Option<&Path>) -> Self {
        let env = std::env::var_os(FACE_MODELS_ENV).filter(|v| !v.is_empty());
        Self::locate_with(explicit, pack, env.as_deref().map(Path::new))
    }

    /// [`FaceModelSource::locate`] with the environment variable's value given.
    pub fn locate_with(explicit: Option<&Path>, pack: Option<&Path>, env: Option<&Path>) -> Self {
        if let Some(dir) = explicit {
            return Self::Dir(dir.to_path_buf());
        }
        pack.map(|p| p.join("face"))
            .filter(|d| d.is_dir())
            .or_else(|| env.map(Path::to_path_buf))
            .map_or(Self::Builtin, Self::Dir)
    }
}

impl fmt::Display for FaceModelSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Dir(d) => write!(f, "{}", d.display()),
            Self::Builtin => f.write_str("built-in"),
        }
    }
}

/// Largest `tddfa_param_mean_std_62.json` accepted (the real one is about 3 KiB).
const MAX_MEAN_STD_BYTES: u64 = files::MIB;

/// Why `dir` cannot be a face-model directory (a stat, which never blocks).
fn check_dir(dir: &Path, layout: &str) -> Result<()> {
    let shown = dir.display();
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(m) => bail!(
            "face model directory {shown} is {}, not a directory; {layout}",
            if m.is_file() {
                "a file"
            } else {
                files::describe(m.file_type())
            }
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!("face model directory {shown} does not exist; {layout}")
        }
        Err(e) => bail!("face model directory {shown} cannot be read: {e}; {layout}"),
    }
}

/// The loaded face models. Sessions run on the CPU: both graphs are tiny and run once per
/// portrait, so a GPU round trip would cost more than it saves.
#[derive(Debug)]
pub struct FaceModels {
    /// YuNet detector.
    pub(crate) yunet: Graph,
    /// Fixed YuNet input size (width, height), or `None` for the dynamic-size graph.
    pub(crate) yunet_fixed: Option<(u32, u32)>,
    /// 3DDFA_V2 regressor.
    pub(crate) tddfa: Graph,
    /// `param` de-normalisation: value = p·std + mean.
    pub(crate) param_mean: [f32; PARAM_COUNT],
    pub(crate) param_std: [f32; PARAM_COUNT],
    source: FaceModelSource,
}

#[derive(serde::Deserialize)]
struct MeanStd {
    mean: Vec<f32>,
    std: Vec<f32>,
}

impl FaceModels {
    /// Loads the models from `source`.
    pub fn open(runtime: &Runtime, source: &FaceModelSource) -> Result<Self> {
        match source {
            FaceModelSource::Dir(dir) => Self::load(runtime, dir),
            FaceModelSource::Builtin => Self::builtin(runtime),
        }
    }

    /// The models compiled into the plugin (YuNet dynamic-size, 3DDFA_V2 MobileNet-0.5).
    pub fn builtin(runtime: &Runtime) -> Result<Self> {
        let yunet = Graph::new(
            "yunet",
            runtime.cpu_session_from_memory(YUNET_DYNAMIC, builtin::YUNET)?,
        );
        let tddfa = Graph::new(
            "tddfa",
            runtime.cpu_session_from_memory(TDDFA, builtin::TDDFA)?,
        );
        let (param_mean, param_std) = parse_mean_std(builtin::MEAN_STD, TDDFA_MEAN_STD)?;
        Self {
            yunet,
            yunet_fixed: None,
            tddfa,
            param_mean,
            param_std,
            source: FaceModelSource::Builtin,
        }
        .validated(YUNET_DYNAMIC, TDDFA)
    }

    /// Loads the models from `dir`, which must hold `yunet_s_dynamic.onnx` (or
    /// `yunet_s_640_640.onnx`), `tddfa_v2_mb05_120x120.onnx` and `tddfa_param_mean_std_62.json`.
    ///
    /// A missing directory or file is an error naming the path and the fix.
    pub fn load(runtime: &Runtime, dir: &Path) -> Result<Self> {
        let layout = format!(
            "the `face-models` directory must hold {YUNET_DYNAMIC} (or {YUNET_FIXED}), {TDDFA} and \
             {TDDFA_MEAN_STD} (as in the project's models/face); set the `face-models` property \
             to that directory, leave it unset to use the built-in models, or set \
             `detect-face=false` with manual `init-pose`/`init-eyes` values"
        );
        check_dir(dir, &layout)?;
        // A name that exists is read through files (which refuses FIFOs and devices and says
        // so); only a missing one is "not found".
        let need = |name: &str| -> Result<PathBuf> {
            let p = dir.join(name);
            if p.exists() {
                Ok(p)
            } else {
                bail!("face model file {} not found; {layout}", p.display())
            }
        };
        let yunet_path = match need(YUNET_DYNAMIC) {
            Ok(p) => p,
            Err(_) => need(YUNET_FIXED).with_context(|| {
                format!(
                    "neither {YUNET_DYNAMIC} nor {YUNET_FIXED} is in {}",
                    dir.display()
                )
            })?,
        };
        let tddfa_path = need(TDDFA)?;
        let json_path = need(TDDFA_MEAN_STD)?;

        let text = files::read_to_string(&json_path, "face model file", MAX_MEAN_STD_BYTES)?;
        let (param_mean, param_std) = parse_mean_std(&text, &json_path.display().to_string())?;
        let yunet = Graph::new("yunet", runtime.cpu_session(&yunet_path)?);
        let tddfa = Graph::new("tddfa", runtime.cpu_session(&tddfa_path)?);
        Self {
            yunet,
            yunet_fixed: None,
            tddfa,
            param_mean,
            param_std,
            source: FaceModelSource::Dir(dir.to_path_buf()),
        }
        .validated(
            &yunet_path.display().to_string(),
            &tddfa_path.display().to_string(),
        )
    }

    /// Checks that the graphs are the YuNet and 3DDFA_V2 graphs this code reads (the names
    /// appear in errors) and records YuNet's input size.
    fn validated(mut self, yunet_name: &str, tddfa_name: &str) -> Result<Self> {
        let (yin, yout) = self.yunet.signature();
        let input = yin
            .first()
            .with_context(|| format!("{yunet_name} has no input"))?;
        if input.dims.len() != 4 || input.dims[1] != 3 {
            bail!(
                "{yunet_name}: input `{}` has shape {:?}, expected [1, 3, H, W] (YuNet)",
                input.name,
                input.dims
            );
        }
        self.yunet_fixed = (input.dims[2] > 0 && input.dims[3] > 0)
            .then(|| (input.dims[3] as u32, input.dims[2] as u32));
        for stride in [8, 16, 32] {
            for head in ["cls", "obj", "bbox", "kps"] {
                let name = format!("{head}_{stride}");
                if !yout.iter().any(|o| o.name == name) {
                    bail!(
                        "{yunet_name} lacks output `{name}`: not a YuNet (libfacedetection 2023) \
                         graph"
                    );
                }
            }
        }
        let (_, tout) = self.tddfa.signature();
        for name in ["param", "lm_aux"] {
            if !tout.iter().any(|o| o.name == name) {
                bail!(
                    "{tddfa_name} lacks output `{name}`: not the 3DDFA_V2 graph this element \
                     expects (tools/face converts the checkpoint with both heads)"
                );
            }
        }
        Ok(self)
    }

    /// Where the models were loaded from.
    pub fn source(&self) -> &FaceModelSource {
        &self.source
    }
}

/// Parses `{"mean": [62 numbers], "std": [62 numbers]}`; `name` appears in errors.
fn parse_mean_std(text: &str, name: &str) -> Result<([f32; PARAM_COUNT], [f32; PARAM_COUNT])> {
    let ms: MeanStd = serde_json::from_str(text).with_context(|| {
        format!(
            "{name} is not valid JSON of the form {{\"mean\": [62 numbers], \"std\": [62 numbers]}}"
        )
    })?;
    if ms.mean.len() != PARAM_COUNT || ms.std.len() != PARAM_COUNT {
        bail!(
            "{name} holds {} means and {} standard deviations, expected {PARAM_COUNT} of each",
            ms.mean.len(),
            ms.std.len()
        );
    }
    let mut mean = [0.0; PARAM_COUNT];
    let mut std = [0.0; PARAM_COUNT];
    mean.copy_from_slice(&ms.mean);
    std.copy_from_slice(&ms.std);
    Ok((mean, std))
}
