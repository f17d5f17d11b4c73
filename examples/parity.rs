//! Runs the engine on tensors prepared by `tools/parity` and writes every intermediate tensor
//! (audio features, PBNet deltas, conditions, ε per step, final latents, frames) so that the
//! tool can compare them with upstream DAWN's. No GStreamer.
//!
//! ```text
//! cargo run --release --example parity -- --model PACK --inputs DIR --out DIR [--threads N]
//! ```
//! `DIR/case.json` holds `n_samples`, `planned_samples` (or null), `steps`, `eta`,
//! `chunk` ([C, L, R, Al, Ar, Lp]), `init_pose` (6), `init_eye` (2); `audio.f32`, `noise.f32`,
//! `src_img.f32` ([3][S][S]) and `face_mask.f32` ([S][S]) are raw little-endian float32.
//! The output folder gets one `.f32` file per tensor and `index.json` listing them in order.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, bail};
use gstdawn::engine::{
    ChunkConfig, Engine, PortraitInput, ReplayNoise, RuntimeConfig, Stream, StreamConfig, Tap,
    audio::Alignment, runtime::Provider,
};
use serde_json::{Value, json};

const USAGE: &str = "usage: parity --model PACK --inputs DIR --out DIR [--threads N]";

fn read_f32(path: &Path) -> Result<Vec<f32>> {
    let b = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(b.chunks_exact(4)
        .map(|x| f32::from_le_bytes([x[0], x[1], x[2], x[3]]))
        .collect())
}

fn write_f32(path: &Path, data: &[f32]) -> Result<()> {
    let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

/// Writes each tapped tensor to `{seq}_{name}.f32` and remembers its entry for the index.
struct FileTap {
    dir: PathBuf,
    entries: Arc<Mutex<Vec<Value>>>,
}

impl Tap for FileTap {
    fn tensor(&mut self, name: &str, shape: &[usize], data: &[f32]) {
        let mut entries = self.entries.lock().unwrap();
        let file = format!("{:04}_{name}.f32", entries.len());
        if let Err(e) = write_f32(&self.dir.join(&file), data) {
            eprintln!("parity: {e:#}");
            std::process::exit(1);
        }
        entries.push(json!({"name": name, "shape": shape, "file": file}));
    }
}

fn values<const N: usize>(case: &Value, key: &str) -> Result<[f32; N]> {
    let v: Vec<f32> = case[key]
        .as_array()
        .with_context(|| format!("case.json: `{key}` missing"))?
        .iter()
        .filter_map(|x| x.as_f64().map(|f| f as f32))
        .collect();
    v.try_into()
        .map_err(|_| anyhow::anyhow!("case.json: `{key}` needs {N} numbers"))
}

fn run(model: &Path, inputs: &Path, out: &Path, threads: usize) -> Result<()> {
    let case: Value = serde_json::from_str(
        &std::fs::read_to_string(inputs.join("case.json")).context("reading case.json")?,
    )?;
    let u = |k: &str| case[k].as_u64().map(|v| v as usize);
    let c: Vec<usize> = case["chunk"]
        .as_array()
        .context("case.json: `chunk` missing")?
        .iter()
        .filter_map(|v| v.as_u64().map(|x| x as usize))
        .collect();
    let [
        chunk,
        context,
        lookahead,
        audio_left,
        audio_right,
        pbnet_left,
    ] = c[..]
    else {
        bail!("case.json: `chunk` needs [C, L, R, Al, Ar, Lp]");
    };
    let rt = RuntimeConfig {
        provider: Provider::Cpu,
        intra_threads: threads,
        ..Default::default()
    };
    let engine = Engine::load(model, rt, &mut |_| {})?;
    let avatar = engine.avatar(PortraitInput {
        src_img: read_f32(&inputs.join("src_img.f32"))?,
        face_mask: read_f32(&inputs.join("face_mask.f32"))?,
        init_pose: values(&case, "init_pose")?,
        init_eye: values(&case, "init_eye")?,
    })?;
    let audio = read_f32(&inputs.join("audio.f32"))?;
    if Some(audio.len()) != u("n_samples") {
        bail!(
            "audio.f32 holds {} samples, case.json says {:?}",
            audio.len(),
            u("n_samples")
        );
    }
    let cfg = StreamConfig {
        chunk: ChunkConfig {
            chunk,
            context,
            lookahead,
            audio_left,
            audio_right,
            pbnet_left,
        },
        steps: u("steps").context("case.json: `steps` missing")?,
        eta: case["eta"].as_f64().context("case.json: `eta` missing")? as f32,
        decoder_batch: 8,
        planned_samples: u("planned_samples"),
    };
    let noise = ReplayNoise::new(read_f32(&inputs.join("noise.f32"))?);
    let mut stream = Stream::new(cfg, Box::new(noise));
    std::fs::create_dir_all(out)?;
    let entries = Arc::new(Mutex::new(Vec::new()));
    stream.set_tap(Box::new(FileTap {
        dir: out.to_path_buf(),
        entries: entries.clone(),
    }));
    stream.push_audio(&audio);
    stream.finish();
    let (mut frames, mut latents, mut chunks) = (Vec::new(), Vec::new(), Vec::new());
    while let Some(c) = stream.run_chunk(&engine, &avatar, None)? {
        frames.extend_from_slice(&c.frames);
        latents.extend_from_slice(&c.latents);
        let p = &c.plan;
        let alignment = match c.alignment {
            Alignment::Clip { samples } => json!(samples),
            Alignment::TwoRowsPerFrame => Value::Null,
        };
        chunks.push(
            json!({"k0": p.k0, "k1": p.k1, "ke": p.ke, "a0": p.a0, "a1": p.a1,
                           "c0": p.c0, "p0": p.p0, "alignment_samples": alignment}),
        );
    }
    let (s, r) = (engine.resolution(), engine.latent_size());
    let n = frames.len() / (3 * s * s);
    write_f32(&out.join("frames.f32"), &frames)?;
    write_f32(&out.join("latents.f32"), &latents)?;
    let index = json!({
        "tensors": *entries.lock().unwrap(),
        "frames": {"file": "frames.f32", "shape": [n, 3, s, s]},
        "latents": {"file": "latents.f32", "shape": [n, 3, r, r]},
        "chunks": chunks,
        "noise_consumed": stream.noise_consumed(),
    });
    std::fs::write(
        out.join("index.json"),
        serde_json::to_string_pretty(&index)?,
    )?;
    println!(
        "parity: {n} frames, {} chunks -> {}",
        index["chunks"].as_array().map_or(0, |c| c.len()),
        out.display()
    );
    Ok(())
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut model, mut inputs, mut out, mut threads) = (None, None, None, 0);
    while let Some(k) = args.next() {
        let mut val = || args.next().map(PathBuf::from);
        match k.as_str() {
            "--model" => model = val(),
            "--inputs" => inputs = val(),
            "--out" => out = val(),
            "--threads" => threads = val().and_then(|v| v.to_str()?.parse().ok()).unwrap_or(0),
            _ => {
                eprintln!("{USAGE}");
                std::process::exit(2);
            }
        }
    }
    let (Some(model), Some(inputs), Some(out)) = (model, inputs, out) else {
        eprintln!("{USAGE}");
        std::process::exit(2);
    };
    if let Err(e) = run(&model, &inputs, &out, threads) {
        eprintln!("parity: {e:#}");
        std::process::exit(1);
    }
}
