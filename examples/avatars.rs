//! Many avatars, one model: N `dawnavatar` elements in one pipeline, one per seed, all on the
//! same pack. Prints each stream's frame count and a hash of all its frames, and the process's
//! peak memory. Elements with the same pack and settings share one loaded engine; `--unshared`
//! gives each element another `device-id` (ignored on the CPU, but part of the sharing key) so
//! that each loads its own, for comparison.
//!
//! ```text
//! cargo run --release --example avatars -- --model PACK --seeds 1,2,3 [--seconds 2] [--steps 2]
//!     [--image face.png] [--unshared] [--set prop=value]...
//! ```
//! Bit-identity: the hash of seed S in a run with several seeds equals the hash of the run with
//! `--seeds S` alone.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use gst::prelude::*;

mod common;

const USAGE: &str = "usage: avatars --model PACK --seeds 1,2,3 [--seconds 2] [--steps 2] \
[--image face.png] [--audio speech_16k.wav] [--unshared] [--set prop=value]...";

struct Args {
    model: PathBuf,
    image: PathBuf,
    audio: PathBuf,
    seeds: Vec<u64>,
    seconds: f64,
    steps: u32,
    unshared: bool,
    extra: Vec<String>,
}

fn parse() -> Result<Args> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut a = Args {
        model: PathBuf::new(),
        image: root.join("tests/data/skimage_astronaut_128.png"),
        audio: root.join("tests/data/speech_orig_16k.wav"),
        seeds: vec![1],
        seconds: 2.0,
        steps: 2,
        unshared: false,
        extra: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        if k == "--unshared" {
            a.unshared = true;
            continue;
        }
        if k == "--help" || k == "-h" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        let v = it
            .next()
            .with_context(|| format!("{k} needs a value\n{USAGE}"))?;
        match k.as_str() {
            "--model" => a.model = v.into(),
            "--image" => a.image = v.into(),
            "--audio" => a.audio = v.into(),
            "--seconds" => a.seconds = v.parse().context("--seconds")?,
            "--steps" => a.steps = v.parse().context("--steps")?,
            "--set" => a.extra.push(v),
            "--seeds" => {
                a.seeds = v
                    .split(',')
                    .map(|s| s.trim().parse())
                    .collect::<Result<_, _>>()
                    .context("--seeds: comma-separated integers")?
            }
            _ => bail!("unknown option {k}\n{USAGE}"),
        }
    }
    if a.model.as_os_str().is_empty() || a.seeds.is_empty() {
        bail!("--model PACK and --seeds are required\n{USAGE}");
    }
    Ok(a)
}

/// 64-bit FNV-1a, enough to tell frame streams apart.
fn fnv1a(hash: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(hash, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn main() -> Result<()> {
    let a = parse()?;
    gst::init()?;
    gstdawn::plugin_register_static()?;
    let (speech, rate) = common::read_wav(&a.audio)?;
    if rate != 16_000 {
        bail!("{} is {rate} Hz; 16 kHz mono expected", a.audio.display());
    }
    let audio = &speech[..((a.seconds * 16_000.0) as usize).min(speech.len())];
    let branches: Vec<String> = a
        .seeds
        .iter()
        .enumerate()
        .map(|(i, seed)| {
            format!(
                "appsrc name=src{i} format=time ! dawnavatar model-path=\"{}\" image=\"{}\" \
                 execution-provider=cpu seed={seed} sampling-steps={} device-id={} {} ! \
                 appsink name=sink{i} sync=false",
                a.model.display(),
                a.image.display(),
                a.steps,
                if a.unshared { i } else { 0 },
                a.extra.join(" ")
            )
        })
        .collect();
    let pipeline = gst::parse::launch(&branches.join("  "))
        .context("building the pipeline")?
        .downcast::<gst::Pipeline>()
        .unwrap();
    let hashes: Vec<Arc<Mutex<(u64, u64)>>> = a
        .seeds
        .iter()
        .map(|_| Arc::new(Mutex::new((0, 0xcbf2_9ce4_8422_2325))))
        .collect();
    for (i, h) in hashes.iter().enumerate() {
        let sink = pipeline
            .by_name(&format!("sink{i}"))
            .unwrap()
            .downcast::<gst_app::AppSink>()
            .unwrap();
        let h = h.clone();
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |s| {
                    let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    let buf = sample.buffer().ok_or(gst::FlowError::Error)?;
                    let map = buf.map_readable().map_err(|_| gst::FlowError::Error)?;
                    let mut g = h.lock().unwrap();
                    g.0 += 1;
                    g.1 = fnv1a(g.1, &map);
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
    }
    let caps = gst_audio::AudioCapsBuilder::new_interleaved()
        .format(gst_audio::AudioFormat::F32le)
        .rate(16_000)
        .channels(1)
        .build();
    let srcs: Vec<gst_app::AppSrc> = (0..a.seeds.len())
        .map(|i| {
            let src = pipeline
                .by_name(&format!("src{i}"))
                .unwrap()
                .downcast::<gst_app::AppSrc>()
                .unwrap();
            src.set_caps(Some(&caps));
            src
        })
        .collect();
    let start = Instant::now();
    pipeline
        .set_state(gst::State::Playing)
        .context("starting the pipeline (see the error above)")?;
    for src in &srcs {
        for (k, chunk) in audio.chunks(1600).enumerate() {
            let bytes: Vec<u8> = chunk.iter().flat_map(|s| s.to_le_bytes()).collect();
            let mut buf = gst::Buffer::from_mut_slice(bytes);
            let b = buf.get_mut().unwrap();
            b.set_pts(gst::ClockTime::from_nseconds(k as u64 * 100_000_000));
            b.set_duration(gst::ClockTime::from_nseconds(
                chunk.len() as u64 * 1_000_000_000 / 16_000,
            ));
            src.push_buffer(buf)?;
        }
        src.end_of_stream()?;
    }
    let bus = pipeline.bus().unwrap();
    let mut result = Ok(());
    for msg in bus.iter_timed(gst::ClockTime::NONE) {
        match msg.view() {
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(e) => {
                result = Err(anyhow::anyhow!("{} ({:?})", e.error(), e.debug()));
                break;
            }
            _ => {}
        }
    }
    let wall = start.elapsed().as_secs_f64();
    pipeline.set_state(gst::State::Null)?;
    result?;
    for (seed, h) in a.seeds.iter().zip(&hashes) {
        let (frames, hash) = *h.lock().unwrap();
        println!("stream seed {seed}: {frames} frames, hash {hash:016x}");
    }
    println!(
        "elements {} ({}), {:.1} s of audio each, {} steps: wall {wall:.1} s, peak memory {:.0} MiB (VmHWM)",
        a.seeds.len(),
        if a.unshared {
            "one engine each"
        } else {
            "sharing one engine"
        },
        audio.len() as f64 / 16_000.0,
        a.steps,
        common::peak_rss_mib()
    );
    Ok(())
}
