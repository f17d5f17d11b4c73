//! Engine benchmark (no GStreamer): runs a speech file through a model pack and prints frames
//! per second, real-time factor, time per stage, host overhead (wall time outside ONNX
//! Runtime), first-chunk latency and peak memory.
//!
//! ```text
//! cargo run --release --example bench -- --model PACK [--audio speech_16k.wav] [--image face.png]
//!     [--seconds 8] [--steps 20] [--chunk N (default: the element's offline policy) --context 20 --lookahead 10] [--provider cpu|cuda|tensorrt]
//!     [--threads N] [--decoder-batch 8]
//! ```
//! The audio must be 16 kHz mono 16-bit WAV (tests/data/speech_orig_16k.wav by default).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};

mod common;
use gstdawn::engine::{
    ChunkConfig, Engine, PortraitInput, RuntimeConfig, SeededNoise, Stream, StreamConfig, chunker,
    runtime::Provider,
};

const USAGE: &str = "usage: bench --model PACK [--audio speech_16k.wav] [--image face.png] \
[--seconds S] [--steps N] [--chunk N (default: the element's offline policy) --context 20 --lookahead 10] \
[--provider cpu|cuda|tensorrt|auto] [--threads N] [--decoder-batch 8]";

struct Args {
    model: PathBuf,
    audio: PathBuf,
    image: PathBuf,
    seconds: Option<f64>,
    steps: Option<usize>,
    chunk: usize,
    context: usize,
    lookahead: usize,
    provider: Provider,
    threads: usize,
    decoder_batch: usize,
}

fn parse() -> Result<Args> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut a = Args {
        model: PathBuf::new(),
        audio: root.join("tests/data/speech_orig_16k.wav"),
        image: root.join("tests/data/skimage_astronaut_128.png"),
        seconds: None,
        steps: None,
        chunk: 0,
        context: 20,
        lookahead: 10,
        provider: Provider::Cpu,
        threads: 0,
        decoder_batch: 8,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        if k == "--help" || k == "-h" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        let v = it
            .next()
            .with_context(|| format!("{k} needs a value\n{USAGE}"))?;
        match k.as_str() {
            "--model" => a.model = v.into(),
            "--audio" => a.audio = v.into(),
            "--image" => a.image = v.into(),
            "--seconds" => a.seconds = Some(v.parse()?),
            "--steps" => a.steps = Some(v.parse()?),
            "--chunk" => a.chunk = v.parse()?,
            "--context" => a.context = v.parse()?,
            "--lookahead" => a.lookahead = v.parse()?,
            "--threads" => a.threads = v.parse()?,
            "--decoder-batch" => a.decoder_batch = v.parse()?,
            "--provider" => {
                a.provider = match v.as_str() {
                    "cpu" => Provider::Cpu,
                    "cuda" => Provider::Cuda,
                    "tensorrt" => Provider::TensorRt,
                    "auto" => Provider::Auto,
                    _ => bail!("--provider cpu|cuda|tensorrt|auto"),
                }
            }
            _ => bail!("unknown option {k}\n{USAGE}"),
        }
    }
    if a.model.as_os_str().is_empty() {
        bail!("--model PACK is required\n{USAGE}");
    }
    Ok(a)
}

fn main() -> Result<()> {
    let a = parse()?;
    let t_load = Instant::now();
    let engine = Engine::load(
        &a.model,
        RuntimeConfig {
            provider: a.provider,
            intra_threads: a.threads,
            ..Default::default()
        },
        &mut |_| {},
    )?;
    let load_s = t_load.elapsed().as_secs_f64();
    let s = engine.resolution();
    // The portrait: centre crop resized to the pack resolution, default pose (the engine's
    // cost does not depend on the face).
    let img = image::open(&a.image)?.to_rgb8();
    let side = img.width().min(img.height());
    let crop = image::imageops::crop_imm(
        &img,
        (img.width() - side) / 2,
        (img.height() - side) / 2,
        side,
        side,
    )
    .to_image();
    let img = image::imageops::resize(
        &crop,
        s as u32,
        s as u32,
        image::imageops::FilterType::Triangle,
    );
    let mut src_img = vec![0f32; 3 * s * s];
    for (i, p) in img.pixels().enumerate() {
        for c in 0..3 {
            src_img[c * s * s + i] = p[c] as f32 / 255.0;
        }
    }
    let mut face_mask = vec![0f32; s * s];
    for y in s / 5..s - s / 5 {
        for x in s / 5..s - s / 5 {
            face_mask[y * s + x] = 1.0;
        }
    }
    let d = &engine.pack.manifest.defaults;
    let avatar = engine.avatar(PortraitInput {
        src_img,
        face_mask,
        init_pose: d.init_pose.clone().try_into().unwrap(),
        init_eye: d.init_eye.clone().try_into().unwrap(),
    })?;
    let (mut audio, rate) = common::read_wav(&a.audio)?;
    if rate != 16_000 {
        bail!(
            "{} is {rate} Hz; the benchmark needs 16 kHz mono (the element resamples, the engine does not)",
            a.audio.display()
        );
    }
    if let Some(sec) = a.seconds {
        let n = (sec * 16_000.0) as usize;
        // Loop the recording if a longer benchmark is asked for.
        let base = audio.clone();
        while audio.len() < n {
            audio.extend_from_slice(&base);
        }
        audio.truncate(n);
    }
    let steps = a.steps.unwrap_or(engine.default_steps());
    // Default: the element's offline policy for a file of this length.
    let chunk = if a.chunk > 0 {
        a.chunk
    } else {
        chunker::offline_chunk(
            chunker::offline_max_call(s),
            a.context,
            a.lookahead,
            Some(audio.len() / 640),
        )
    };
    let cfg = StreamConfig {
        chunk: ChunkConfig::new(chunk, a.context, a.lookahead),
        steps,
        eta: engine.default_eta(),
        decoder_batch: a.decoder_batch,
    };
    let warm = Instant::now();
    engine.warm_up(
        &avatar,
        cfg.chunk.context + cfg.chunk.chunk + cfg.chunk.lookahead,
    )?;
    let warm_s = warm.elapsed().as_secs_f64();
    let mut stream = Stream::new(cfg, Box::new(SeededNoise::new(1234)));
    stream.push_audio(&audio);
    stream.finish();
    let start = Instant::now();
    let mut first_chunk = None;
    while let Some(chunk) = stream.run_chunk(&engine, &avatar, None)? {
        if first_chunk.is_none() {
            first_chunk = Some(start.elapsed().as_secs_f64());
        }
        eprint!(
            "\rframes {}/{}",
            chunk.plan.k1,
            stream.total_frames().unwrap_or(0)
        );
    }
    eprintln!();
    let wall = start.elapsed().as_secs_f64();
    let t = stream.times();
    let frames = t.frames as f64;
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
    println!(
        "pack            {} ({}x{}, {})",
        a.model.display(),
        s,
        s,
        engine.pack.manifest.provenance.precision
    );
    println!("provider        {}", engine.runtime.provider());
    println!(
        "audio           {:.2} s -> {} frames",
        audio.len() as f64 / 16_000.0,
        t.frames
    );
    println!(
        "chunking        chunk {} + context {} + look-ahead {} frames, {steps} steps (diffusion frames {:.2} x emitted)",
        cfg.chunk.chunk,
        cfg.chunk.context,
        cfg.chunk.lookahead,
        t.diffusion_frames as f64 / frames.max(1.0)
    );
    println!("load            {load_s:.2} s (+ warm-up {warm_s:.2} s)");
    println!(
        "wall            {wall:.2} s: {:.2} frames/s, real-time factor {:.3}",
        frames / wall,
        wall / (frames / 25.0)
    );
    let wait = cfg.chunk.wait_frames() as f64 * 0.04;
    println!(
        "first chunk     {:.2} s; live first-frame latency = {:.2} s audio wait + {:.2} s = {:.2} s",
        first_chunk.unwrap_or(0.0),
        wait,
        first_chunk.unwrap_or(0.0),
        wait + first_chunk.unwrap_or(0.0)
    );
    println!(
        "per stage (ms)  audio {:.0} | pbnet {:.0} | denoiser {:.0} ({} calls, {:.2} ms per frame per step) | decoder {:.0} ({:.1} ms/frame) | host {:.0}",
        ms(t.audio),
        ms(t.pbnet),
        ms(t.denoiser),
        t.denoiser_calls,
        ms(t.denoiser) / (t.diffusion_frames as f64 * steps as f64).max(1.0),
        ms(t.decoder),
        ms(t.decoder) / frames.max(1.0),
        ms(t.host)
    );
    println!(
        "host overhead   {:.2} % of wall time (outside ONNX Runtime)",
        100.0 * t.host.as_secs_f64() / t.total.as_secs_f64().max(1e-9)
    );
    println!("peak memory     {:.0} MiB (VmHWM)", common::peak_rss_mib());
    Ok(())
}
