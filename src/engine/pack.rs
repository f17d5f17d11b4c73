//! The model pack: `manifest.json` plus six ONNX graphs (contract in `docs/model-pack.md`).
//!
//! Loading validates the manifest and every graph's signature and reports *all* differences at
//! once, so a user with a half-broken export sees the whole picture in one error.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use super::files;
use super::runtime::IoSpec;

/// Manifest format name and the contract version this engine implements.
pub const PACK_FORMAT: &str = "gst-dawn-model-pack";
pub const PACK_VERSION: u32 = 1;
/// DAWN's training rates: 640 audio samples per video frame.
pub const FPS: u32 = 25;
pub const SAMPLE_RATE: u32 = 16_000;
pub const SAMPLES_PER_FRAME: usize = (SAMPLE_RATE / FPS) as usize;
pub const FEATURE_DIM: usize = 1024;
pub const POSE_DIM: usize = 6;
pub const EYE_DIM: usize = 2;
pub const COND_DIM: usize = FEATURE_DIM + POSE_DIM + EYE_DIM;
pub const LATENT_CHANNELS: usize = 3;

/// Upper bounds of the contract (docs/model-pack.md): values that size allocations or loops
/// are bounded so a broken or hostile manifest cannot ask for gigabytes.
pub const MAX_MANIFEST_BYTES: u64 = files::MIB;
/// ONNX files hold at most 2 GiB (protobuf's limit; the contract has no external data).
pub const MAX_GRAPH_BYTES: u64 = 2 << 30;
pub const MAX_NOISE_DIM: u32 = 4096;
pub const MAX_TRAIN_TIMESTEPS: u32 = 100_000;
/// The `sampling-steps` property's range.
pub const MAX_SAMPLING_STEPS: u32 = 999;
pub const MAX_ATTENTION_WINDOW: u32 = 100_000;

/// Why `dir` cannot be a model pack directory, with the fix (a stat, which never blocks).
fn check_pack_dir(dir: &Path) -> Result<()> {
    let shown = dir.display();
    let fix = "fix: set model-path to a pack directory made by tools/export (docs/exporter.md), \
               or to tests/models/tiny128 for the untrained test pack";
    let meta = match std::fs::metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!("model pack directory {shown} does not exist; {fix}")
        }
        Err(e) => bail!("model pack directory {shown} cannot be read: {e}; {fix}"),
    };
    if meta.is_dir() {
        return Ok(());
    }
    let what = if meta.is_file() {
        "a file"
    } else {
        files::describe(meta.file_type())
    };
    let hint = match (meta.is_file(), dir.file_name(), dir.parent()) {
        (true, Some(name), Some(parent)) if name == "manifest.json" => format!(
            "fix: set model-path to the directory holding it, {}",
            parent.display()
        ),
        _ => format!("model-path names the directory holding manifest.json and the graphs; {fix}"),
    };
    bail!("model-path {shown} is {what}, not a model pack directory; {hint}")
}

/// A graph name must be a plain file name inside the pack directory: no directories, no
/// `..`, not absolute.
fn graph_name_problem(role: Role, file: &str) -> Option<String> {
    let plain =
        !file.is_empty() && file != "." && file != ".." && !file.contains(['/', '\\', '\0']);
    (!plain).then(|| {
        format!(
            "manifest.json: graphs.{} is {file:?}, expected a plain file name in the pack \
             directory (no directories, no `..`, not absolute)",
            role.name()
        )
    })
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Manifest {
    pub format: String,
    pub version: u32,
    #[serde(default)]
    pub name: String,
    pub resolution: u32,
    pub latent_size: u32,
    pub fps: u32,
    pub sample_rate: u32,
    pub audio: AudioSpec,
    pub pbnet: PbnetSpec,
    pub diffusion: DiffusionSpec,
    pub defaults: Defaults,
    pub graphs: GraphFiles,
    pub provenance: Provenance,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct AudioSpec {
    pub feature_dim: u32,
    pub feature_rate: u32,
    pub hop_samples: u32,
    pub window_samples: u32,
    pub normalize_eps: f64,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct PbnetSpec {
    pub noise_dim: u32,
    pub pose_dim: u32,
    pub eye_dim: u32,
    pub pose_min: Vec<f32>,
    pub pose_max: Vec<f32>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct DiffusionSpec {
    pub schedule: String,
    pub train_timesteps: u32,
    pub cosine_s: f64,
    pub max_beta: f64,
    pub sampling_steps: u32,
    pub eta: f32,
    pub threshold_quantile: f32,
    pub latent_channels: u32,
    pub condition_dim: u32,
    pub attention_window: u32,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Defaults {
    pub init_pose: Vec<f32>,
    pub init_eye: Vec<f32>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct GraphFiles {
    pub audio_encoder: String,
    pub pbnet_pose: String,
    pub pbnet_blink: String,
    pub portrait_encoder: String,
    pub denoiser: String,
    pub decoder: String,
}

impl GraphFiles {
    pub fn iter(&self) -> [(Role, &str); 6] {
        [
            (Role::AudioEncoder, &self.audio_encoder),
            (Role::PbnetPose, &self.pbnet_pose),
            (Role::PbnetBlink, &self.pbnet_blink),
            (Role::PortraitEncoder, &self.portrait_encoder),
            (Role::Denoiser, &self.denoiser),
            (Role::Decoder, &self.decoder),
        ]
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Provenance {
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub weights: String,
    pub precision: String,
    #[serde(default)]
    pub tool: String,
    #[serde(default)]
    pub created: String,
    #[serde(default)]
    pub source: String,
    #[serde(default)]
    pub notes: String,
    /// How the denoiser's temporal attention was exported: "dense" or "banded" (informational;
    /// reported by the benchmarks).
    #[serde(default)]
    pub attention: Option<String>,
}

/// The six graphs of a pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    AudioEncoder,
    PbnetPose,
    PbnetBlink,
    PortraitEncoder,
    Denoiser,
    Decoder,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::AudioEncoder => "audio_encoder",
            Role::PbnetPose => "pbnet_pose",
            Role::PbnetBlink => "pbnet_blink",
            Role::PortraitEncoder => "portrait_encoder",
            Role::Denoiser => "denoiser",
            Role::Decoder => "decoder",
        }
    }
}

/// A dimension in the contract: fixed, or a named dynamic axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dim {
    Fixed(i64),
    Dynamic(&'static str),
    /// Fixed, positive, but chosen by the exporter (the opaque static channel count).
    AnyFixed(&'static str),
}

impl std::fmt::Display for Dim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Dim::Fixed(v) => write!(f, "{v}"),
            Dim::Dynamic(n) | Dim::AnyFixed(n) => f.write_str(n),
        }
    }
}

fn fmt_dims(dims: &[Dim]) -> String {
    let parts: Vec<String> = dims.iter().map(|d| d.to_string()).collect();
    format!("[{}]", parts.join(", "))
}

fn fmt_actual(dims: &[i64]) -> String {
    let parts: Vec<String> = dims
        .iter()
        .map(|d| if *d < 0 { "?".into() } else { d.to_string() })
        .collect();
    format!("[{}]", parts.join(", "))
}

/// Expected tensors of one graph: (name, dims).
pub type TensorSpecs = Vec<(&'static str, Vec<Dim>)>;

/// Expected inputs and outputs of one graph for a given resolution.
pub fn contract(role: Role, m: &Manifest) -> (TensorSpecs, TensorSpecs) {
    use Dim::*;
    let s_full = m.resolution as i64;
    let s = m.latent_size as i64;
    let z = m.pbnet.noise_dim as i64;
    let feat = FEATURE_DIM as i64;
    let cond = COND_DIM as i64;
    let portrait = || {
        vec![
            (
                "skip0",
                vec![Fixed(1), Fixed(64), Fixed(s_full), Fixed(s_full)],
            ),
            (
                "skip1",
                vec![Fixed(1), Fixed(128), Fixed(s_full / 2), Fixed(s_full / 2)],
            ),
            ("feat", vec![Fixed(1), Fixed(256), Fixed(s), Fixed(s)]),
        ]
    };
    let img = (
        "src_img",
        vec![Fixed(1), Fixed(3), Fixed(s_full), Fixed(s_full)],
    );
    match role {
        Role::AudioEncoder => (
            vec![("input_values", vec![Fixed(1), Dynamic("T")])],
            vec![(
                "last_hidden_state",
                vec![Fixed(1), Dynamic("Th"), Fixed(feat)],
            )],
        ),
        Role::PbnetPose | Role::PbnetBlink => {
            let d = if role == Role::PbnetPose {
                POSE_DIM
            } else {
                EYE_DIM
            } as i64;
            (
                vec![
                    ("init_state", vec![Fixed(1), Fixed(1), Fixed(d)]),
                    ("z", vec![Dynamic("N"), Fixed(1), Fixed(z)]),
                    ("audio", vec![Fixed(1), Dynamic("N"), Fixed(feat)]),
                ],
                vec![("delta", vec![Fixed(1), Dynamic("N"), Fixed(d)])],
            )
        }
        Role::PortraitEncoder => {
            let mut outs = portrait();
            outs.push(("static", vec![Fixed(1), AnyFixed("Cs"), Fixed(s), Fixed(s)]));
            (
                vec![
                    img,
                    (
                        "face_mask",
                        vec![Fixed(1), Fixed(1), Fixed(s_full), Fixed(s_full)],
                    ),
                ],
                outs,
            )
        }
        Role::Denoiser => {
            let lat = vec![Fixed(1), Fixed(3), Dynamic("F"), Fixed(s), Fixed(s)];
            (
                vec![
                    ("x_t", lat.clone()),
                    ("static", vec![Fixed(1), AnyFixed("Cs"), Fixed(s), Fixed(s)]),
                    ("timestep", vec![Fixed(1)]),
                    ("cond", vec![Fixed(1), Dynamic("F"), Fixed(cond)]),
                ],
                vec![("eps", lat)],
            )
        }
        Role::Decoder => {
            let mut ins = vec![img];
            ins.extend(portrait());
            ins.push(("flow", vec![Dynamic("F"), Fixed(s), Fixed(s), Fixed(2)]));
            ins.push((
                "occlusion",
                vec![Dynamic("F"), Fixed(1), Fixed(s), Fixed(s)],
            ));
            (
                ins,
                vec![(
                    "frames",
                    vec![Dynamic("F"), Fixed(3), Fixed(s_full), Fixed(s_full)],
                )],
            )
        }
    }
}

/// Parsed, checked manifest plus the directory it came from.
#[derive(Debug, Clone)]
pub struct ModelPack {
    pub dir: PathBuf,
    pub manifest: Manifest,
}

impl ModelPack {
    /// Reads and checks `manifest.json`; graph files must be regular files in the pack
    /// directory. Graph signatures are checked separately by [`check_signature`] once sessions
    /// exist.
    pub fn open(dir: &Path) -> Result<Self> {
        check_pack_dir(dir)?;
        let path = dir.join("manifest.json");
        let text = files::read_to_string(&path, "model pack manifest", MAX_MANIFEST_BYTES)
            .with_context(|| {
                format!(
                    "model-path {} must be a model pack directory holding manifest.json (see \
                     docs/model-pack.md)",
                    dir.display()
                )
            })?;
        let manifest: Manifest = serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is not a valid gst-dawn manifest; fix: re-export the pack with tools/export",
                path.display()
            )
        })?;
        let mut problems = check_manifest(&manifest);
        for (role, file) in manifest.graphs.iter() {
            if let Some(p) = graph_name_problem(role, file) {
                problems.push(p);
                continue;
            }
            let path = dir.join(file);
            if !path.exists() {
                problems.push(format!("{}: graph file {file} is missing", role.name()));
            } else if let Err(e) = files::check_regular(&path, "graph file", MAX_GRAPH_BYTES) {
                problems.push(format!("{}: {e:#}", role.name()));
            }
        }
        if !problems.is_empty() {
            bail!(format_problems(dir, &problems));
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            manifest,
        })
    }

    pub fn resolution(&self) -> usize {
        self.manifest.resolution as usize
    }

    pub fn latent_size(&self) -> usize {
        self.manifest.latent_size as usize
    }
}

/// Formats a list of contract differences as one error message with the fix.
pub fn format_problems(dir: &Path, problems: &[String]) -> String {
    let mut msg = format!(
        "model pack {} does not match contract v{PACK_VERSION}:",
        dir.display()
    );
    for p in problems {
        let _ = write!(msg, "\n  - {p}");
    }
    msg.push_str(
        "\nfix: re-export the pack with tools/export (docs/exporter.md) or point model-path at another pack",
    );
    msg
}

/// Every rule of the manifest table in docs/model-pack.md.
pub fn check_manifest(m: &Manifest) -> Vec<String> {
    let mut p = Vec::new();
    let mut check = |ok: bool, msg: String| {
        if !ok {
            p.push(format!("manifest.json: {msg}"));
        }
    };
    check(
        m.format == PACK_FORMAT,
        format!("format is {:?}, expected {PACK_FORMAT:?}", m.format),
    );
    check(
        m.version == PACK_VERSION,
        format!(
            "version is {}, this engine reads version {PACK_VERSION}",
            m.version
        ),
    );
    check(
        matches!(m.resolution, 64 | 128 | 256),
        format!("resolution is {}, expected 64, 128 or 256", m.resolution),
    );
    check(
        m.latent_size * 4 == m.resolution,
        format!(
            "latent_size is {}, expected resolution/4 = {}",
            m.latent_size,
            m.resolution / 4
        ),
    );
    check(m.fps == FPS, format!("fps is {}, expected {FPS}", m.fps));
    check(
        m.sample_rate == SAMPLE_RATE,
        format!("sample_rate is {}, expected {SAMPLE_RATE}", m.sample_rate),
    );
    let a = &m.audio;
    check(
        a.feature_dim as usize == FEATURE_DIM,
        format!(
            "audio.feature_dim is {}, expected {FEATURE_DIM}",
            a.feature_dim
        ),
    );
    check(
        a.feature_rate == 50,
        format!("audio.feature_rate is {}, expected 50", a.feature_rate),
    );
    check(
        a.hop_samples == 320,
        format!("audio.hop_samples is {}, expected 320", a.hop_samples),
    );
    check(
        a.window_samples == 400,
        format!("audio.window_samples is {}, expected 400", a.window_samples),
    );
    check(
        a.normalize_eps > 0.0 && a.normalize_eps <= 1.0,
        format!(
            "audio.normalize_eps is {}, expected in (0, 1]",
            a.normalize_eps
        ),
    );
    let b = &m.pbnet;
    check(
        (1..=MAX_NOISE_DIM).contains(&b.noise_dim),
        format!(
            "pbnet.noise_dim is {}, expected 1..={MAX_NOISE_DIM}",
            b.noise_dim
        ),
    );
    check(
        b.pose_dim as usize == POSE_DIM,
        format!("pbnet.pose_dim is {}, expected {POSE_DIM}", b.pose_dim),
    );
    check(
        b.eye_dim as usize == EYE_DIM,
        format!("pbnet.eye_dim is {}, expected {EYE_DIM}", b.eye_dim),
    );
    check(
        b.pose_min.len() == POSE_DIM
            && b.pose_max.len() == POSE_DIM
            && b.pose_min.iter().zip(&b.pose_max).all(|(lo, hi)| lo < hi)
            && b.pose_min.iter().chain(&b.pose_max).all(|v| v.is_finite()),
        "pbnet.pose_min/pose_max must be 6 finite numbers each with min < max".into(),
    );
    let d = &m.diffusion;
    check(
        d.schedule == "cosine",
        format!(
            "diffusion.schedule is {:?}, expected \"cosine\"",
            d.schedule
        ),
    );
    check(
        (2..=MAX_TRAIN_TIMESTEPS).contains(&d.train_timesteps),
        format!(
            "diffusion.train_timesteps is {}, expected 2..={MAX_TRAIN_TIMESTEPS}",
            d.train_timesteps
        ),
    );
    check(
        d.cosine_s > 0.0 && d.cosine_s <= 1.0,
        format!("diffusion.cosine_s is {}, expected in (0, 1]", d.cosine_s),
    );
    check(
        d.max_beta > 0.0 && d.max_beta < 1.0,
        format!("diffusion.max_beta is {}, expected in (0, 1)", d.max_beta),
    );
    check(
        d.sampling_steps >= 1
            && d.sampling_steps < d.train_timesteps
            && d.sampling_steps <= MAX_SAMPLING_STEPS,
        format!(
            "diffusion.sampling_steps is {}, expected 1..={} (below train_timesteps)",
            d.sampling_steps,
            MAX_SAMPLING_STEPS.min(d.train_timesteps.saturating_sub(1))
        ),
    );
    check(
        (0.0..=1.0).contains(&d.eta),
        format!("diffusion.eta is {}, expected in [0, 1]", d.eta),
    );
    check(
        d.threshold_quantile > 0.0 && d.threshold_quantile <= 1.0,
        format!(
            "diffusion.threshold_quantile is {}, expected in (0, 1]",
            d.threshold_quantile
        ),
    );
    check(
        d.latent_channels as usize == LATENT_CHANNELS,
        format!(
            "diffusion.latent_channels is {}, expected {LATENT_CHANNELS}",
            d.latent_channels
        ),
    );
    check(
        d.condition_dim as usize == COND_DIM,
        format!(
            "diffusion.condition_dim is {}, expected {COND_DIM}",
            d.condition_dim
        ),
    );
    check(
        d.attention_window <= MAX_ATTENTION_WINDOW,
        format!(
            "diffusion.attention_window is {}, expected 0..={MAX_ATTENTION_WINDOW}",
            d.attention_window
        ),
    );
    let finite = |v: &[f32]| v.iter().all(|x| x.is_finite());
    check(
        m.defaults.init_pose.len() == POSE_DIM && finite(&m.defaults.init_pose),
        format!(
            "defaults.init_pose has {} numbers, expected {POSE_DIM} finite ones",
            m.defaults.init_pose.len()
        ),
    );
    check(
        m.defaults.init_eye.len() == EYE_DIM && finite(&m.defaults.init_eye),
        format!(
            "defaults.init_eye has {} numbers, expected {EYE_DIM} finite ones",
            m.defaults.init_eye.len()
        ),
    );
    check(
        matches!(m.provenance.precision.as_str(), "fp32" | "fp16"),
        format!(
            "provenance.precision is {:?}, expected \"fp32\" or \"fp16\"",
            m.provenance.precision
        ),
    );
    p
}

/// Compares one graph's declared signature with the contract. Returns the differences and the
/// value of the `Cs` axis if the graph declares one.
pub fn check_signature(
    role: Role,
    file: &str,
    m: &Manifest,
    inputs: &[IoSpec],
    outputs: &[IoSpec],
) -> (Vec<String>, Option<i64>) {
    let (want_in, want_out) = contract(role, m);
    let mut problems = Vec::new();
    let mut cs = None;
    for (kind, want, have) in [("input", &want_in, inputs), ("output", &want_out, outputs)] {
        for (name, dims) in want.iter() {
            let Some(io) = have.iter().find(|io| io.name == *name) else {
                problems.push(format!("{file}: missing {kind} `{name}`"));
                continue;
            };
            if !io.is_f32 {
                problems.push(format!(
                    "{file}: {kind} `{name}` has type {}, expected float32",
                    io.dtype
                ));
            }
            let shape_ok = io.dims.len() == dims.len()
                && dims.iter().zip(&io.dims).all(|(want, have)| match want {
                    Dim::Fixed(v) => have == v,
                    Dim::Dynamic(_) => *have < 0,
                    Dim::AnyFixed(_) => *have > 0,
                });
            if !shape_ok {
                problems.push(format!(
                    "{file}: {kind} `{name}` has shape {}, expected {}",
                    fmt_actual(&io.dims),
                    fmt_dims(dims)
                ));
            }
            for (want, have) in dims.iter().zip(&io.dims) {
                if matches!(want, Dim::AnyFixed(_)) && *have > 0 {
                    cs = Some(*have);
                }
            }
        }
        for io in have {
            if !want.iter().any(|(n, _)| *n == io.name) {
                problems.push(format!(
                    "{file}: unexpected {kind} `{}` (not in the contract)",
                    io.name
                ));
            }
        }
    }
    (problems, cs)
}
