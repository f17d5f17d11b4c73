//! Engine benchmark (no GStreamer): runs a speech file through a model pack and prints frames
//! per second, real-time factor, time per stage, host overhead (wall time outside ONNX
//! Runtime), first-chunk latency and peak memory.
//!
//! `--live` feeds the audio in real time and measures what a live element sees: first-frame
//! latency after the audio starts and the audio-to-frame latency of every frame; `--streams N`
//! runs N such streams at once on one shared engine (`--streams 1,3`: one, then three, on the
//! same loaded engine). `--placement` prints which execution
//! provider ONNX Runtime gave each graph's nodes. Every figure is also printed as a
//! machine-readable `FIGURE {json}` line (and appended to `--figures FILE`).
//!
//! ```text
//! cargo run --release --example bench -- --model PACK [--audio speech_16k.wav] [--image face.png]
//!     [--seconds 8] [--steps 20] [--chunk N --context N --lookahead N] [--provider cpu|cuda|tensorrt]
//!     [--threads N] [--decoder-batch 8] [--live] [--streams N[,N...]] [--placement] [--figures FILE]
//! ```
//! The audio must be 16 kHz mono 16-bit WAV (tests/data/speech_orig_16k.wav by default).
//! Default chunking: the element's offline policy, or its live one with `--live`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde_json::json;

#[path = "../common/mod.rs"]
mod common;
mod figures;
mod live;

use figures::{Figures, emit_gpu_memory, quantile};
use gstdawn::engine::{
    ChunkConfig, Engine, PortraitInput, RuntimeConfig, SeededNoise, Stream, StreamConfig, chunker,
    runtime::Provider,
};

const USAGE: &str = "usage: bench --model PACK [--audio speech_16k.wav] [--image face.png] \
[--seconds S] [--steps N] [--chunk N --context N --lookahead N (default: the element's offline \
policy, 20 + 10; with --live its live one, 16 + 16 + 8)] [--provider cpu|cuda|tensorrt|auto] \
[--device N] [--threads N] [--decoder-batch 8] [--live] [--streams N[,N...]] [--placement] [--figures FILE]";

struct Args {
    model: PathBuf,
    audio: PathBuf,
    image: PathBuf,
    seconds: Option<f64>,
    steps: Option<usize>,
    chunk: Option<usize>,
    context: Option<usize>,
    lookahead: Option<usize>,
    provider: Provider,
    device: i32,
    threads: usize,
    decoder_batch: usize,
    live: bool,
    /// Stream counts to run one after the other on the same engine (live only).
    streams: Vec<usize>,
    placement: bool,
    figures: Option<PathBuf>,
}

fn parse() -> Result<Args> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut a = Args {
        model: PathBuf::new(),
        audio: root.join("tests/data/speech_orig_16k.wav"),
        image: root.join("tests/data/skimage_astronaut_128.png"),
        seconds: None,
        steps: None,
        chunk: None,
        context: None,
        lookahead: None,
        provider: Provider::Cpu,
        device: 0,
        threads: 0,
        decoder_batch: 8,
        live: false,
        streams: vec![1],
        placement: false,
        figures: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        match k.as_str() {
            "--help" | "-h" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            "--live" => {
                a.live = true;
                continue;
            }
            "--placement" => {
                a.placement = true;
                continue;
            }
            _ => {}
        }
        let v = it
            .next()
            .with_context(|| format!("{k} needs a value\n{USAGE}"))?;
        let bad = |what: &str| format!("{k} {v}: {what}\n{USAGE}");
        match k.as_str() {
            "--model" => a.model = v.into(),
            "--audio" => a.audio = v.into(),
            "--image" => a.image = v.into(),
            "--figures" => a.figures = Some(v.into()),
            "--seconds" => a.seconds = Some(v.parse().with_context(|| bad("seconds"))?),
            "--steps" => a.steps = Some(v.parse().with_context(|| bad("a count"))?),
            "--chunk" => a.chunk = Some(v.parse().with_context(|| bad("frames"))?),
            "--context" => a.context = Some(v.parse().with_context(|| bad("frames"))?),
            "--lookahead" => a.lookahead = Some(v.parse().with_context(|| bad("frames"))?),
            "--threads" => a.threads = v.parse().with_context(|| bad("a count"))?,
            "--device" => a.device = v.parse().with_context(|| bad("a device id"))?,
            "--decoder-batch" => a.decoder_batch = v.parse().with_context(|| bad("frames"))?,
            "--streams" => {
                a.streams = v
                    .split(',')
                    .map(|n| n.trim().parse::<usize>())
                    .collect::<Result<_, _>>()
                    .with_context(|| bad("counts, e.g. 1,3"))?
            }
            "--provider" => {
                a.provider = match v.as_str() {
                    "cpu" => Provider::Cpu,
                    "cuda" => Provider::Cuda,
                    "tensorrt" => Provider::TensorRt,
                    "auto" => Provider::Auto,
                    _ => bail!(bad("cpu|cuda|tensorrt|auto")),
                }
            }
            _ => bail!("unknown option {k}\n{USAGE}"),
        }
    }
    if a.model.as_os_str().is_empty() {
        bail!("--model PACK is required\n{USAGE}");
    }
    if a.streams.contains(&0) || (a.streams != [1] && !a.live) {
        bail!("--streams N[,N...] (N >= 1) needs --live\n{USAGE}");
    }
    Ok(a)
}

/// The portrait: centre crop resized to the pack resolution, a face box, the pack's default
/// pose (the engine's cost does not depend on the face).
fn portrait(engine: &Engine, image: &std::path::Path) -> Result<PortraitInput> {
    let s = engine.resolution();
    let img = image::open(image)
        .with_context(|| format!("reading {}", image.display()))?
        .to_rgb8();
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
    Ok(PortraitInput {
        src_img,
        face_mask,
        init_pose: d.init_pose.clone().try_into().unwrap(),
        init_eye: d.init_eye.clone().try_into().unwrap(),
    })
}

fn read_audio(a: &Args) -> Result<Vec<f32>> {
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
    Ok(audio)
}

fn chunking(a: &Args, resolution: usize, frames: usize) -> ChunkConfig {
    let (c, l, r) = if a.live {
        chunker::LIVE_CHUNKING
    } else {
        (0, chunker::OFFLINE_CONTEXT, chunker::OFFLINE_LOOKAHEAD)
    };
    let context = a.context.unwrap_or(l);
    let lookahead = a.lookahead.unwrap_or(r);
    let chunk = a.chunk.unwrap_or(if a.live {
        c
    } else {
        chunker::offline_chunk(
            chunker::offline_max_call(resolution),
            context,
            lookahead,
            Some(frames),
        )
    });
    ChunkConfig::new(chunk, context, lookahead)
}

fn main() -> Result<()> {
    let a = parse()?;
    let config = RuntimeConfig {
        provider: a.provider,
        device_id: a.device,
        intra_threads: a.threads,
        log_placement: a.placement,
        ..Default::default()
    };
    // Context fields known before loading, for the figures that come first.
    let pack_name = a
        .model
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let pre = Figures::new(
        json!({"pack": pack_name, "requested_provider": a.provider.to_string()})
            .as_object()
            .cloned()
            .unwrap_or_default(),
        a.figures.clone(),
    );
    emit_gpu_memory(&pre, "gpu_mem_before_load_mib", a.device)?;
    let t_load = Instant::now();
    let engine = Arc::new(Engine::load(&a.model, config, &mut |step| {
        eprintln!("{step}")
    })?);
    let load_s = t_load.elapsed().as_secs_f64();
    let s = engine.resolution();
    let portrait = portrait(&engine, &a.image)?;
    let audio = read_audio(&a)?;
    let steps = a.steps.unwrap_or(engine.default_steps());
    let cfg = StreamConfig {
        chunk: chunking(&a, s, audio.len() / 640),
        steps,
        eta: engine.default_eta(),
        decoder_batch: a.decoder_batch,
        // Offline the element knows the file's length; live it does not.
        planned_samples: (!a.live).then_some(audio.len()),
    };
    let c = &cfg.chunk;
    let figures = Figures::new(
        json!({
            "pack": pack_name,
            "res": s,
            "precision": engine.pack.manifest.provenance.precision,
            "provider": engine.runtime.provider().to_string(),
            "mode": if a.live { "live" } else { "offline" },
            "chunk": format!("{}+{}+{}", c.chunk, c.context, c.lookahead),
            "steps": steps,
            "audio_s": audio.len() as f64 / 16_000.0,
        })
        .as_object()
        .cloned()
        .unwrap_or_default(),
        a.figures.clone(),
    );
    figures.emit("load_s", Some(load_s), "s", json!({}))?;
    if a.placement {
        print_placement(&engine, &figures)?;
    }
    let warm = Instant::now();
    let avatar = engine.avatar(portrait.clone())?;
    engine.warm_up(&avatar, c.context + c.chunk + c.lookahead)?;
    drop(avatar);
    figures.emit(
        "warmup_s",
        Some(warm.elapsed().as_secs_f64()),
        "s",
        json!({}),
    )?;
    emit_gpu_memory(&figures, "gpu_mem_start_mib", a.device)?;
    println!(
        "pack            {} ({}x{}, {})",
        a.model.display(),
        s,
        s,
        engine.pack.manifest.provenance.precision
    );
    println!("provider        {}", engine.runtime.provider());
    println!(
        "load            {load_s:.2} s (+ warm-up {:.2} s)",
        warm.elapsed().as_secs_f64()
    );
    if a.live {
        for &n in &a.streams {
            let figures = figures.with("streams", json!(n));
            run_live(n, &engine, &portrait, &audio, cfg, &figures)?;
            emit_gpu_memory(&figures, "gpu_mem_end_mib", a.device)?;
        }
    } else {
        let figures = figures.with("streams", json!(1));
        run_offline(&engine, &portrait, &audio, cfg, &figures)?;
        emit_gpu_memory(&figures, "gpu_mem_end_mib", a.device)?;
    }
    let rss = common::peak_rss_mib();
    println!("peak memory     {rss:.0} MiB (VmHWM)");
    figures.emit("peak_rss_mib", Some(rss), "MiB", json!({}))?;
    Ok(())
}

fn run_offline(
    engine: &Engine,
    portrait: &PortraitInput,
    audio: &[f32],
    cfg: StreamConfig,
    figures: &Figures,
) -> Result<()> {
    let avatar = engine.avatar(portrait.clone())?;
    let mut stream = Stream::new(cfg, Box::new(SeededNoise::new(1234)));
    stream.push_audio(audio);
    stream.finish();
    let start = Instant::now();
    let mut first_chunk = None;
    while let Some(chunk) = stream.run_chunk(engine, &avatar, None)? {
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
    let steps = cfg.steps;
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
    let rtf = wall / (frames / 25.0);
    println!(
        "wall            {wall:.2} s: {:.2} frames/s, real-time factor {rtf:.3}",
        frames / wall,
    );
    let wait = live::audio_wait_seconds(&cfg);
    let first = first_chunk.unwrap_or(0.0);
    println!(
        "first chunk     {first:.2} s; live first-frame latency = {wait:.2} s audio wait + {first:.2} s = {:.2} s",
        wait + first
    );
    print_stages(&t, steps);
    figures.emit("rtf", Some(rtf), "x", json!({}))?;
    figures.emit("fps", Some(frames / wall), "frames/s", json!({}))?;
    figures.emit("first_chunk_s", first_chunk, "s", json!({}))?;
    Ok(())
}

fn run_live(
    streams: usize,
    engine: &Arc<Engine>,
    portrait: &PortraitInput,
    audio: &[f32],
    cfg: StreamConfig,
    figures: &Figures,
) -> Result<()> {
    let seeds: Vec<u64> = (0..streams as u64).map(|i| 1234 + i).collect();
    let start = Instant::now();
    let runs = live::run(engine, portrait, audio, cfg, &seeds)?;
    let wall = start.elapsed().as_secs_f64();
    let video = live::video_seconds(runs[0].times.frames);
    let compute: Vec<f64> = runs.iter().map(|r| r.times.total.as_secs_f64()).collect();
    let busy: f64 = compute.iter().sum();
    let rtf = compute.iter().sum::<f64>() / compute.len() as f64 / video;
    let frames: u64 = runs.iter().map(|r| r.times.frames).sum();
    let first_frame = runs
        .iter()
        .filter_map(|r| r.first_frame)
        .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))));
    let first_chunk = runs
        .iter()
        .filter_map(|r| r.first_chunk)
        .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))));
    let mut lat: Vec<f64> = runs.iter().flat_map(|r| r.latencies.clone()).collect();
    let chunks: usize = runs.iter().map(|r| r.chunks).sum();
    let waited: f64 = runs.iter().map(|r| r.times.waited.as_secs_f64()).sum();
    println!(
        "live            {} stream(s), {:.2} s of audio each -> {} frames each, chunk {} + context {} + look-ahead {}, {} steps",
        streams,
        audio.len() as f64 / 16_000.0,
        runs[0].times.frames,
        cfg.chunk.chunk,
        cfg.chunk.context,
        cfg.chunk.lookahead,
        cfg.steps
    );
    println!(
        "compute         real-time factor {rtf:.3} per stream; shared engine busy {:.3} of real time; {:.2} frames/s in all (wall {wall:.2} s)",
        busy / video,
        frames as f64 / busy
    );
    println!(
        "latency         first frame {:.3} s after the audio starts (first chunk {:.3} s of compute, {:.2} s audio wait); audio to frame p50 {:.3} s, p95 {:.3} s, max {:.3} s",
        first_frame.unwrap_or(f64::NAN),
        first_chunk.unwrap_or(f64::NAN),
        live::audio_wait_seconds(&cfg),
        quantile(&mut lat, 0.5).unwrap_or(f64::NAN),
        quantile(&mut lat, 0.95).unwrap_or(f64::NAN),
        quantile(&mut lat, 1.0).unwrap_or(f64::NAN),
    );
    if streams > 1 {
        println!(
            "sharing         {:.1} ms waited per chunk for the shared engine",
            1e3 * waited / chunks.max(1) as f64
        );
    }
    let mut totals = runs[0].times;
    for r in &runs[1..] {
        totals += r.times;
    }
    print_stages(&totals, cfg.steps);
    figures.emit(
        "rtf",
        Some(rtf),
        "x",
        json!({"what": "compute per stream / video"}),
    )?;
    figures.emit(
        "engine_rtf",
        Some(busy / video),
        "x",
        json!({"what": "all streams' compute / video of one stream (<= 1: every stream keeps up)"}),
    )?;
    figures.emit("fps", Some(frames as f64 / busy), "frames/s", json!({}))?;
    figures.emit(
        "first_frame_s",
        first_frame,
        "s",
        json!({"what": "audio start to first frame"}),
    )?;
    figures.emit("first_chunk_compute_s", first_chunk, "s", json!({}))?;
    figures.emit(
        "audio_wait_s",
        Some(live::audio_wait_seconds(&cfg)),
        "s",
        json!({"what": "audio a chunk waits for (chunk + look-ahead + encoder context)"}),
    )?;
    for (name, q) in [("p50", 0.5), ("p95", 0.95), ("max", 1.0)] {
        figures.emit(
            &format!("audio_to_frame_{name}_s"),
            quantile(&mut lat, q),
            "s",
            json!({"what": "end of a frame's audio to the frame"}),
        )?;
    }
    figures.emit(
        "wait_per_chunk_ms",
        Some(1e3 * waited / chunks.max(1) as f64),
        "ms",
        json!({}),
    )?;
    Ok(())
}

fn print_stages(t: &gstdawn::engine::StageTimes, steps: usize) {
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
    let frames = t.frames as f64;
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
}

/// One line per graph, and a figure with the nodes ONNX Runtime put on the CPU.
fn print_placement(engine: &Engine, figures: &Figures) -> Result<()> {
    for (graph, p) in engine.placements() {
        let cpu_ops = p.cpu().map(|c| op_histogram(&c.nodes)).unwrap_or_default();
        let compute = p.cpu_compute_nodes();
        println!(
            "placement       {graph}: {p}{}",
            if compute.is_empty() {
                String::new()
            } else {
                format!("; on the CPU besides shape ops: {}", compute.join(", "))
            }
        );
        figures.emit(
            "cpu_nodes",
            p.is_known().then_some(p.cpu_count() as f64),
            "nodes",
            json!({
                "graph": graph,
                "total_nodes": p.total(),
                "placement": p.to_string(),
                "cpu_ops": cpu_ops,
                "cpu_compute_nodes": compute,
            }),
        )?;
    }
    Ok(())
}

/// `OpType (name)` lines → {"OpType": count}.
fn op_histogram(nodes: &[String]) -> serde_json::Map<String, serde_json::Value> {
    let mut m = serde_json::Map::new();
    for n in nodes {
        let op = n.split_whitespace().next().unwrap_or("").to_string();
        let c = m.get(&op).and_then(|v| v.as_u64()).unwrap_or(0);
        m.insert(op, json!(c + 1));
    }
    m
}
