//! The face models: YuNet (detector) and the 3DDFA_V2 MobileNet-0.5 regressor, loaded from one
//! directory (the element's `face-models` property).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::engine::runtime::{Graph, Runtime};

/// YuNet with a dynamic input size (preferred: the image keeps its aspect ratio).
pub const YUNET_DYNAMIC: &str = "yunet_s_dynamic.onnx";
/// YuNet with a fixed 640×640 input (used when the dynamic file is absent; letterboxed input).
pub const YUNET_FIXED: &str = "yunet_s_640_640.onnx";
/// 3DDFA_V2 MobileNet-0.5, 120×120 BGR input → `param` `[N, 62]`, `lm_aux` `[N, 136]`.
pub const TDDFA: &str = "tddfa_v2_mb05_120x120.onnx";
/// The 62 means and standard deviations that de-normalise `param`.
pub const TDDFA_MEAN_STD: &str = "tddfa_param_mean_std_62.json";

/// Number of 3DDFA parameters: 12 camera (3×4, row-major) + 40 shape + 10 expression.
pub const PARAM_COUNT: usize = 62;

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
    dir: PathBuf,
}

#[derive(serde::Deserialize)]
struct MeanStd {
    mean: Vec<f32>,
    std: Vec<f32>,
}

impl FaceModels {
    /// Loads the models from `dir`, which must hold `yunet_s_dynamic.onnx` (or
    /// `yunet_s_640_640.onnx`), `tddfa_v2_mb05_120x120.onnx` and `tddfa_param_mean_std_62.json`.
    ///
    /// A missing directory or file is an error naming the path and the fix.
    pub fn load(runtime: &Runtime, dir: &Path) -> Result<Self> {
        let layout = format!(
            "the `face-models` directory must hold {YUNET_DYNAMIC} (or {YUNET_FIXED}), {TDDFA} and \
             {TDDFA_MEAN_STD} (as shipped in shared/models/face); set the `face-models` property to \
             that directory, or set `detect-face=false` with manual `init-pose`/`init-eyes` values"
        );
        if !dir.is_dir() {
            bail!(
                "face model directory {} does not exist; {layout}",
                dir.display()
            );
        }
        let need = |name: &str| -> Result<PathBuf> {
            let p = dir.join(name);
            if p.is_file() {
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

        let text = std::fs::read_to_string(&json_path)
            .with_context(|| format!("cannot read {}", json_path.display()))?;
        let ms: MeanStd = serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is not valid JSON of the form {{\"mean\": [62 numbers], \"std\": [62 numbers]}}",
                json_path.display()
            )
        })?;
        if ms.mean.len() != PARAM_COUNT || ms.std.len() != PARAM_COUNT {
            bail!(
                "{} holds {} means and {} standard deviations, expected {PARAM_COUNT} of each",
                json_path.display(),
                ms.mean.len(),
                ms.std.len()
            );
        }
        let mut param_mean = [0.0; PARAM_COUNT];
        let mut param_std = [0.0; PARAM_COUNT];
        param_mean.copy_from_slice(&ms.mean);
        param_std.copy_from_slice(&ms.std);

        let yunet = Graph::new("yunet", runtime.cpu_session(&yunet_path)?);
        let tddfa = Graph::new("tddfa", runtime.cpu_session(&tddfa_path)?);

        let (yin, yout) = yunet.signature();
        let input = yin
            .first()
            .with_context(|| format!("{} has no input", yunet_path.display()))?;
        if input.dims.len() != 4 || input.dims[1] != 3 {
            bail!(
                "{}: input `{}` has shape {:?}, expected [1, 3, H, W] (YuNet)",
                yunet_path.display(),
                input.name,
                input.dims
            );
        }
        let yunet_fixed = (input.dims[2] > 0 && input.dims[3] > 0)
            .then(|| (input.dims[3] as u32, input.dims[2] as u32));
        for stride in [8, 16, 32] {
            for head in ["cls", "obj", "bbox", "kps"] {
                let name = format!("{head}_{stride}");
                if !yout.iter().any(|o| o.name == name) {
                    bail!(
                        "{} lacks output `{name}`: not a YuNet (libfacedetection 2023) graph",
                        yunet_path.display()
                    );
                }
            }
        }
        let (_, tout) = tddfa.signature();
        for name in ["param", "lm_aux"] {
            if !tout.iter().any(|o| o.name == name) {
                bail!(
                    "{} lacks output `{name}`: not the 3DDFA_V2 graph this element expects",
                    tddfa_path.display()
                );
            }
        }
        Ok(Self {
            yunet,
            yunet_fixed,
            tddfa,
            param_mean,
            param_std,
            dir: dir.to_path_buf(),
        })
    }

    /// The directory the models were loaded from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}
