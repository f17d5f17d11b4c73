//! Shared helpers for the integration tests: plugin registration, test media, and small
//! pipelines around `dawnavatar`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Once;
use std::time::Duration;

use gst::prelude::*;

pub mod probe;

pub fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        gst::init().unwrap();
        gstdawn::plugin_register_static().expect("register dawn plugin");
    });
}

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn data(name: &str) -> PathBuf {
    root().join("tests/data").join(name)
}

pub fn pack(name: &str) -> PathBuf {
    root().join("tests/models").join(name)
}

/// Mono 16-bit PCM WAV → f32 samples in [-1, 1] and the sample rate.
pub fn read_wav(path: &Path) -> (Vec<f32>, u32) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[0..4], b"RIFF");
    let mut pos = 12;
    let (mut rate, mut channels, mut bits) = (0u32, 0u16, 0u16);
    while pos + 8 <= bytes.len() {
        let id = &bytes[pos..pos + 4];
        let len = u32::from_le_bytes(bytes[pos + 4..pos + 8].try_into().unwrap()) as usize;
        let body = &bytes[pos + 8..(pos + 8 + len).min(bytes.len())];
        if id == b"fmt " {
            channels = u16::from_le_bytes([body[2], body[3]]);
            rate = u32::from_le_bytes(body[4..8].try_into().unwrap());
            bits = u16::from_le_bytes([body[14], body[15]]);
        } else if id == b"data" {
            assert_eq!((channels, bits), (1, 16), "test WAVs are mono 16-bit");
            let samples = body
                .chunks_exact(2)
                .map(|b| i16::from_le_bytes([b[0], b[1]]) as f32 / 32768.0)
                .collect();
            return (samples, rate);
        }
        pos += 8 + len + (len & 1);
    }
    panic!("no data chunk in {}", path.display());
}

/// The 16 kHz speech recording used by most tests.
pub fn speech() -> Vec<f32> {
    let (s, rate) = read_wav(&data("speech_orig_16k.wav"));
    assert_eq!(rate, 16_000);
    s
}

/// A `dawnavatar` with the tiny pack, the test portrait, and the given extra properties.
pub fn avatar(pack_name: &str, props: &[(&str, glib::Value)]) -> gst::Element {
    init();
    let e = gst::ElementFactory::make("dawnavatar")
        .property("model-path", pack(pack_name).to_str().unwrap())
        .property("image", data("skimage_astronaut_128.png").to_str().unwrap())
        .property(
            "execution-provider",
            gstdawn::element::ExecutionProvider::Cpu,
        )
        .build()
        .unwrap();
    for (name, value) in props {
        e.set_property_from_value(name, value);
    }
    e
}

/// Parses a pipeline whose source is an appsrc named `src` and gives that appsrc F32LE mono
/// 16 kHz caps.
pub fn appsrc_pipeline(desc: &str) -> (gst::Pipeline, gst_app::AppSrc) {
    init();
    let pipeline = gst::parse::launch(desc)
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
    let src = pipeline
        .by_name("src")
        .unwrap()
        .downcast::<gst_app::AppSrc>()
        .unwrap();
    src.set_caps(Some(&audio_caps_f32()));
    (pipeline, src)
}

/// F32LE mono 16 kHz audio caps.
pub fn audio_caps_f32() -> gst::Caps {
    gst_audio::AudioCapsBuilder::new_interleaved()
        .format(gst_audio::AudioFormat::F32le)
        .rate(16_000)
        .channels(1)
        .build()
}

pub fn audio_caps_s16() -> gst::Caps {
    gst_audio::AudioCapsBuilder::new_interleaved()
        .format(gst_audio::AudioFormat::S16le)
        .rate(16_000)
        .channels(1)
        .build()
}

/// A buffer of F32LE samples with timestamps from sample offset `offset`.
pub fn f32_buffer(samples: &[f32], offset: u64) -> gst::Buffer {
    let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
    let mut buf = gst::Buffer::from_mut_slice(bytes);
    {
        let b = buf.get_mut().unwrap();
        b.set_pts(gst::ClockTime::from_nseconds(
            offset * 1_000_000_000 / 16_000,
        ));
        b.set_duration(gst::ClockTime::from_nseconds(
            samples.len() as u64 * 1_000_000_000 / 16_000,
        ));
    }
    buf
}

/// Runs `audio` through `element` in a harness (non-live upstream) cut into buffers of
/// `buffer_samples`, and returns every output buffer until EOS.
pub fn run_harness(
    element: &gst::Element,
    audio: &[f32],
    buffer_samples: usize,
) -> Vec<gst::Buffer> {
    let mut h = gst_check::Harness::with_element(element, Some("sink"), Some("src"));
    h.set_live(false);
    h.set_src_caps(audio_caps_f32());
    h.play();
    let mut offset = 0u64;
    for chunk in audio.chunks(buffer_samples.max(1)) {
        assert_eq!(h.push(f32_buffer(chunk, offset)), Ok(gst::FlowSuccess::Ok));
        offset += chunk.len() as u64;
    }
    assert!(h.push_event(gst::event::Eos::new()));
    pull_until_eos(&mut h)
}

/// Pulls buffers until the EOS event arrives (fails the test after 120 s without progress).
pub fn pull_until_eos(h: &mut gst_check::Harness) -> Vec<gst::Buffer> {
    let mut out = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        while let Some(ev) = h.try_pull_event() {
            if ev.type_() == gst::EventType::Eos {
                while let Some(b) = h.try_pull() {
                    out.push(b);
                }
                return out;
            }
        }
        match h.try_pull() {
            Some(b) => out.push(b),
            None => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "no EOS after 120 s ({} buffers)",
                    out.len()
                );
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
}

pub fn bytes(b: &gst::Buffer) -> Vec<u8> {
    b.map_readable().unwrap().to_vec()
}

/// Runs a pipeline to EOS or error; returns the error text if any.
pub fn run_pipeline(pipeline: &gst::Pipeline, timeout: Duration) -> Result<(), String> {
    let bus = pipeline.bus().unwrap();
    if pipeline.set_state(gst::State::Playing).is_err() {
        let err = first_error(&bus);
        let _ = pipeline.set_state(gst::State::Null);
        return Err(err.unwrap_or_else(|| "state change failed without an error message".into()));
    }
    let res = loop {
        let Some(msg) = bus.timed_pop(gst::ClockTime::from_nseconds(timeout.as_nanos() as u64))
        else {
            break Err("timeout".to_string());
        };
        match msg.view() {
            gst::MessageView::Eos(_) => break Ok(()),
            gst::MessageView::Error(e) => {
                break Err(e.error().to_string()
                    + " / "
                    + &e.debug().map(|d| d.to_string()).unwrap_or_default());
            }
            _ => {}
        }
    };
    pipeline.set_state(gst::State::Null).unwrap();
    res
}

pub fn first_error(bus: &gst::Bus) -> Option<String> {
    while let Some(msg) = bus.pop() {
        if let gst::MessageView::Error(e) = msg.view() {
            return Some(format!(
                "{} / {}",
                e.error(),
                e.debug().map(|d| d.to_string()).unwrap_or_default()
            ));
        }
    }
    None
}

/// Fails the whole test binary, naming what hung, unless dropped within `limit`: a hang is a
/// failure with a message, never a stuck CI run.
pub struct Watchdog {
    _disarm: std::sync::mpsc::Sender<()>,
}

pub fn watchdog(what: impl Into<String>, limit: Duration) -> Watchdog {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let what = what.into();
    std::thread::spawn(move || {
        if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(limit) {
            // Straight to the file descriptor: the test harness captures eprintln! output,
            // and it would be lost with the exit.
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "WATCHDOG: {what} did not finish within {limit:?}: it hangs"
            );
            std::process::exit(101);
        }
    });
    Watchdog { _disarm: tx }
}

/// Collects the PTS of every buffer an appsink named `sink` receives.
pub fn collect_pts(
    pipeline: &gst::Pipeline,
) -> std::sync::Arc<std::sync::Mutex<Vec<gst::ClockTime>>> {
    let sink = pipeline
        .by_name("sink")
        .unwrap()
        .downcast::<gst_app::AppSink>()
        .unwrap();
    let pts = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let p2 = pts.clone();
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |s| {
                let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                p2.lock()
                    .unwrap()
                    .push(sample.buffer().unwrap().pts().unwrap());
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    pts
}

/// Asserts that `pts` lie on one 40 ms grid with no hole and no repeat.
pub fn assert_on_grid(pts: &[gst::ClockTime], what: &str) {
    let Some(&first) = pts.first() else {
        return;
    };
    for (k, p) in pts.iter().enumerate() {
        assert_eq!(
            *p,
            first + gst::ClockTime::from_mseconds(40 * k as u64),
            "{what}: frame {k} is off the 40 ms grid (hole or duplicate)"
        );
    }
}

/// Threads of this process and its resident memory in KiB (Linux).
pub fn threads_and_rss() -> (usize, u64) {
    let threads = std::fs::read_dir("/proc/self/task").unwrap().count();
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    (threads, pages * 4)
}
