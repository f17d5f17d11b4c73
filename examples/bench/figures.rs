//! Machine-readable results: one `FIGURE {json}` line per figure on stdout (and appended to
//! `--figures FILE`), each carrying the run's context (pack, resolution, precision, provider,
//! streams, chunking, steps), so the lines of many runs can be concatenated and read back.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result};
use serde_json::{Map, Value, json};

pub struct Figures {
    context: Map<String, Value>,
    file: Option<PathBuf>,
}

impl Figures {
    pub fn new(context: Map<String, Value>, file: Option<PathBuf>) -> Self {
        Self { context, file }
    }

    /// The same figures with one more context field.
    pub fn with(&self, key: &str, value: Value) -> Self {
        let mut context = self.context.clone();
        context.insert(key.into(), value);
        Self {
            context,
            file: self.file.clone(),
        }
    }

    /// One figure; `value` is `null` when it could not be measured, with `extra` saying why.
    pub fn emit(&self, name: &str, value: Option<f64>, unit: &str, extra: Value) -> Result<()> {
        let mut m = Map::new();
        m.insert("name".into(), json!(name));
        m.insert(
            "value".into(),
            value.map_or(Value::Null, |v| json!((v * 1e4).round() / 1e4)),
        );
        m.insert("unit".into(), json!(unit));
        for (k, v) in &self.context {
            m.insert(k.clone(), v.clone());
        }
        if let Value::Object(extra) = extra {
            m.extend(extra);
        }
        let line = format!("FIGURE {}", Value::Object(m));
        println!("{line}");
        if let Some(path) = &self.file {
            let mut f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("opening {}", path.display()))?;
            writeln!(f, "{line}").with_context(|| format!("writing {}", path.display()))?;
        }
        Ok(())
    }
}

/// Memory in use on GPU `device` (MiB) as nvidia-smi reports it, or why it is not known.
pub fn gpu_memory_mib(device: i32) -> Result<f64, String> {
    let out = Command::new("nvidia-smi")
        .args([
            "--query-gpu=memory.used",
            "--format=csv,noheader,nounits",
            "-i",
            &device.to_string(),
        ])
        .output()
        .map_err(|e| format!("nvidia-smi not runnable: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "nvidia-smi failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .lines()
        .next()
        .and_then(|l| l.trim().parse::<f64>().ok())
        .ok_or_else(|| format!("nvidia-smi printed {:?}", text.trim()))
}

/// Emits a GPU memory figure, with the reason when it is not known.
pub fn emit_gpu_memory(figures: &Figures, name: &str, device: i32) -> Result<()> {
    match gpu_memory_mib(device) {
        Ok(v) => figures.emit(name, Some(v), "MiB", json!({"source": "nvidia-smi"})),
        Err(why) => figures.emit(name, None, "MiB", json!({ "why": why })),
    }
}

/// The `q` quantile (0..=1) of `v` (sorted in place), nearest rank.
pub fn quantile(v: &mut [f64], q: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let i = ((v.len() - 1) as f64 * q).round() as usize;
    Some(v[i])
}
