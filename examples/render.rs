//! Renders a talking-head video file from a portrait and a speech recording:
//! speech → dawnavatar → H.264, speech → AAC, both muxed into MP4, in sync.
//!
//! ```text
//! cargo run --release --example render -- --image face.jpg --audio speech.wav \
//!     --model tests/models/tiny128 --out talking-head.mp4
//! ```
//! Shows a progress bar with an ETA, then frames, real-time factor and time per stage.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use gst::prelude::*;

mod common;

struct Args {
    image: PathBuf,
    audio: PathBuf,
    model: PathBuf,
    out: PathBuf,
    extra: Vec<(String, String)>,
}

fn usage() -> ! {
    eprintln!(
        "usage: render --image PORTRAIT --audio SPEECH --model PACK --out OUT.mp4 [--set prop=value]...\n\
         --set passes any dawnavatar property, e.g. --set sampling-steps=10 --set execution-provider=cpu"
    );
    std::process::exit(2);
}

fn parse_args() -> Args {
    let mut it = std::env::args().skip(1);
    let (mut image, mut audio, mut model, mut out, mut extra) =
        (None, None, None, None, Vec::new());
    while let Some(a) = it.next() {
        let mut val = || it.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--image" => image = Some(PathBuf::from(val())),
            "--audio" => audio = Some(PathBuf::from(val())),
            "--model" => model = Some(PathBuf::from(val())),
            "--out" => out = Some(PathBuf::from(val())),
            "--set" => {
                let kv = val();
                let (k, v) = kv.split_once('=').unwrap_or_else(|| usage());
                extra.push((k.to_string(), v.to_string()));
            }
            _ => usage(),
        }
    }
    match (image, audio, model, out) {
        (Some(image), Some(audio), Some(model), Some(out)) => Args {
            image,
            audio,
            model,
            out,
            extra,
        },
        _ => usage(),
    }
}

fn main() -> Result<()> {
    let args = parse_args();
    gst::init()?;
    gstdawn::plugin_register_static()?;
    for p in [&args.image, &args.audio] {
        if !p.exists() {
            bail!("{} does not exist", p.display());
        }
    }
    // The audio branch queue is unbounded: the muxer waits for video, which lags the audio by
    // a chunk, so a bounded queue would stall the tee (and the element with it).
    let desc = format!(
        "filesrc location=\"{audio}\" ! decodebin ! audioconvert ! audioresample ! \
         audio/x-raw,rate=16000,channels=1 ! tee name=t \
         t. ! queue ! dawnavatar name=avatar image=\"{image}\" model-path=\"{model}\" ! \
         videoconvert ! video/x-raw,format=I420 ! x264enc speed-preset=medium tune=zerolatency ! \
         video/x-h264,profile=high ! h264parse ! queue ! mp4mux name=mux ! filesink location=\"{out}\" \
         t. ! queue max-size-time=0 max-size-buffers=0 max-size-bytes=0 ! audioconvert ! \
         audioresample ! voaacenc bitrate=64000 ! aacparse ! mux.",
        audio = args.audio.display(),
        image = args.image.display(),
        model = args.model.display(),
        out = args.out.display(),
    );
    let pipeline = gst::parse::launch(&desc)
        .context("building the pipeline (are gstreamer1.0-plugins-good/-bad/-ugly installed? tools/setup.sh does it)")?
        .downcast::<gst::Pipeline>()
        .unwrap();
    let avatar = pipeline.by_name("avatar").unwrap();
    for (k, v) in &args.extra {
        avatar.set_property_from_str(k, v);
    }
    let bus = pipeline.bus().unwrap();
    let started = Instant::now();
    pipeline.set_state(gst::State::Playing).map_err(|_| {
        let msg = bus
            .iter_filtered(&[gst::MessageType::Error])
            .next()
            .map(|m| match m.view() {
                gst::MessageView::Error(e) => e.error().to_string(),
                _ => unreachable!(),
            })
            .unwrap_or_default();
        anyhow::anyhow!("could not start: {msg}")
    })?;
    let mut duration: Option<gst::ClockTime> = None;
    let mut last_draw = Instant::now() - Duration::from_secs(1);
    let result = loop {
        if let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(250)) {
            match msg.view() {
                gst::MessageView::Eos(_) => break Ok(()),
                gst::MessageView::Error(e) => {
                    break Err(anyhow::anyhow!(
                        "{} ({})",
                        e.error(),
                        e.debug().map(|d| d.to_string()).unwrap_or_default()
                    ));
                }
                gst::MessageView::Warning(w) => eprintln!("\rwarning: {}", w.error()),
                gst::MessageView::Progress(p) => {
                    let (_, _, text) = p.get();
                    eprintln!("\r{text}");
                }
                _ => {}
            }
        }
        if duration.is_none() {
            duration = pipeline.query_duration::<gst::ClockTime>();
        }
        // Redraw at most four times a second, however many messages arrive.
        if last_draw.elapsed() < Duration::from_millis(250) {
            continue;
        }
        last_draw = Instant::now();
        let frames: u64 = avatar.property("frames-generated");
        if let Some(d) = duration {
            let total = (d.mseconds() / 40).max(1);
            let done = frames.min(total);
            let elapsed = started.elapsed().as_secs_f64();
            let eta = if done > 0 {
                format!("{:.0} s", elapsed / done as f64 * (total - done) as f64)
            } else {
                "…".into()
            };
            let width = 30;
            let filled = (done as usize * width) / total as usize;
            eprint!(
                "\r[{}{}] {done}/{total} frames, {elapsed:.0} s elapsed, ETA {eta}   ",
                "#".repeat(filled),
                "-".repeat(width - filled)
            );
            let _ = std::io::stderr().flush();
        }
    };
    let wall = started.elapsed();
    let stats: gst::Structure = avatar.property("stats");
    pipeline.set_state(gst::State::Null)?;
    result?;
    eprintln!();
    summary(&stats, wall, &args.out);
    Ok(())
}

fn summary(stats: &gst::Structure, wall: Duration, out: &std::path::Path) {
    let f = |k: &str| stats.get::<f64>(k).unwrap_or(0.0);
    let frames = stats.get::<u64>("frames-generated").unwrap_or(0);
    let video_s = frames as f64 / 25.0;
    println!("wrote {}", out.display());
    println!(
        "{frames} frames ({video_s:.2} s of video) in {:.2} s: real-time factor {:.2}",
        wall.as_secs_f64(),
        wall.as_secs_f64() / video_s.max(1e-9)
    );
    println!(
        "per stage: audio encoder {:.0} ms, PBNet {:.0} ms, denoiser {:.0} ms, decoder {:.0} ms, host {:.0} ms",
        f("audio-ms"),
        f("pbnet-ms"),
        f("denoiser-ms"),
        f("decoder-ms"),
        f("host-ms")
    );
    let peak = common::peak_rss_mib();
    println!("peak memory: {peak:.0} MiB");
    // One machine-readable line for benchmark scripts (tools/bench).
    println!(
        "SUMMARY {{\"frames\": {frames}, \"wall_s\": {:.3}, \"audio_ms\": {:.1}, \"pbnet_ms\": {:.1}, \"denoiser_ms\": {:.1}, \"decoder_ms\": {:.1}, \"host_ms\": {:.1}, \"engine_total_ms\": {:.1}, \"peak_rss_mib\": {peak:.0}}}",
        wall.as_secs_f64(),
        f("audio-ms"),
        f("pbnet-ms"),
        f("denoiser-ms"),
        f("decoder-ms"),
        f("host-ms"),
        f("total-ms")
    );
}
