//! The sampling-step trade-off: renders the same audio with the same seed at several step
//! counts, writes the frames side by side as one PNG (rows: step counts; columns: frames) and
//! prints the time per frame of each.
//!
//! ```text
//! cargo run --release --example steps -- --model PACK [--steps 20,10,5] [--frames 40]
//!     [--image face.png] [--out docs/img/steps.png]
//! ```

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};

mod common;
use gstdawn::engine::{
    ChunkConfig, Engine, RuntimeConfig, SeededNoise, Stream, StreamConfig, runtime::Provider,
};
use gstdawn::portrait::{self, FaceSelect, PortraitOptions};

const USAGE: &str = "usage: steps --model PACK [--steps 20,10,5] [--frames 40] [--image face.png] [--out out/steps.png]";

fn main() -> Result<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut model = None;
    let mut steps = vec![20usize, 10, 5];
    let mut frames = 40usize;
    let mut image = root.join("tests/data/skimage_astronaut_128.png");
    let mut out = root.join("out/steps.png");
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        if k == "--help" || k == "-h" {
            println!("{USAGE}");
            return Ok(());
        }
        let v = it
            .next()
            .with_context(|| format!("{k} needs a value\n{USAGE}"))?;
        match k.as_str() {
            "--model" => model = Some(PathBuf::from(v)),
            "--steps" => steps = v.split(',').map(|s| s.parse()).collect::<Result<_, _>>()?,
            "--frames" => frames = v.parse()?,
            "--image" => image = v.into(),
            "--out" => out = v.into(),
            _ => anyhow::bail!("unknown option {k}\n{USAGE}"),
        }
    }
    let model = model.with_context(|| format!("--model PACK is required\n{USAGE}"))?;
    let engine = Engine::load(
        &model,
        RuntimeConfig {
            provider: Provider::Auto,
            ..Default::default()
        },
        &mut |_| {},
    )?;
    let s = engine.resolution();
    // The test portraits are already face crops.
    let p = portrait::analyse_file(
        &image,
        None,
        &PortraitOptions {
            resolution: s as u32,
            select: FaceSelect::Off,
            ..Default::default()
        },
    )?;
    let avatar = engine.avatar(gstdawn::engine::PortraitInput {
        src_img: p.src_img,
        face_mask: p.face_mask,
        init_pose: p.init_pose,
        init_eye: p.init_eye,
    })?;
    let (speech, _) = common::read_wav(&root.join("tests/data/speech_orig_16k.wav"))?;
    let audio = &speech[..(frames * 640).min(speech.len())];
    let shown = [0, frames / 4, frames / 2, 3 * frames / 4, frames - 1];
    let mut strip = image::RgbImage::new((s * shown.len()) as u32, (s * steps.len()) as u32);
    for (row, &n) in steps.iter().enumerate() {
        // One chunk for the whole clip: the step count is the only difference between rows.
        let cfg = StreamConfig {
            chunk: ChunkConfig::new(frames, 0, 0),
            steps: n,
            eta: engine.default_eta(),
            decoder_batch: 8,
            planned_samples: Some(audio.len()),
        };
        let mut stream = Stream::new(cfg, Box::new(SeededNoise::new(1234)));
        stream.push_audio(audio);
        stream.finish();
        let t = Instant::now();
        let mut rgb_frames = Vec::new();
        while let Some(chunk) = stream.run_chunk(&engine, &avatar, None)? {
            for i in 0..chunk.len() {
                let mut rgb = vec![0u8; s * s * 3];
                chunk.rgb8(i, &mut rgb);
                rgb_frames.push(rgb);
            }
        }
        let el = t.elapsed().as_secs_f64();
        let times = stream.times();
        println!(
            "{n:>3} steps: {:.1} ms per frame ({:.1} ms denoiser, {:.1} ms decoder per frame), real-time factor {:.2}",
            1e3 * el / rgb_frames.len() as f64,
            times.denoiser.as_secs_f64() * 1e3 / rgb_frames.len() as f64,
            times.decoder.as_secs_f64() * 1e3 / rgb_frames.len() as f64,
            el / (rgb_frames.len() as f64 / 25.0)
        );
        for (col, &f) in shown.iter().enumerate() {
            let img = image::RgbImage::from_raw(s as u32, s as u32, rgb_frames[f].clone()).unwrap();
            image::imageops::replace(&mut strip, &img, (col * s) as i64, (row * s) as i64);
        }
    }
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    strip.save(&out)?;
    println!(
        "rows {:?} steps, columns frames {:?}: {}",
        steps,
        shown,
        out.display()
    );
    Ok(())
}
