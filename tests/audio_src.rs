//! The `audio_src` pad: the input audio, unchanged, each buffer released once the video frames
//! covering it exist, so the pipeline a user writes (no tee, default queues) muxes both streams
//! in sync, offline and live. (Every other test leaves `audio_src` unlinked and checks that
//! nothing changes.)

mod common;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::probe::*;
use common::*;
use gst::prelude::*;

const PORTRAIT: &str = "mpl_grace_hopper.jpg";

fn out_file(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dawn-audio-src-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// `SOURCE ! dawnavatar name=a … ! … ! MUX ! filesink  a.audio_src ! AUDIO ! mux.`, the pipeline
/// of the README, with default queues (none at all).
fn mux_pipeline(source: &str, mux: &str, audio: &str, out: &std::path::Path) -> gst::Pipeline {
    let desc = format!(
        "{source} ! dawnavatar name=a image={img} model-path={pack} execution-provider=cpu ! \
         videoconvert ! x264enc speed-preset=ultrafast ! h264parse ! {mux} name=mux ! \
         filesink location={out}  a.audio_src ! {audio} ! mux.",
        img = data(PORTRAIT).display(),
        pack = pack("tiny128").display(),
        out = out.display(),
    );
    gst::parse::launch(&desc)
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap()
}

fn file_source() -> String {
    format!(
        "filesrc location={} ! decodebin ! audioconvert ! audioresample",
        data("speech_orig_16k.wav").display()
    )
}

fn video_frames(path: &std::path::Path) -> u64 {
    let streams = ffprobe(path);
    stream(&streams, "video")["nb_read_frames"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// Start and end of both streams within 40 ms, from the raw packets: the muxer got both.
fn assert_starts_and_ends_together(path: &std::path::Path, slack_end: f64) {
    let (a0, a1) = packet_span(path, "audio");
    let (v0, v1) = packet_span(path, "video");
    println!(
        "{}: audio {a0:.3}..{a1:.3} s, video {v0:.3}..{v1:.3} s",
        path.display()
    );
    assert!(
        (a0 - v0).abs() <= 0.040,
        "starts differ: audio {a0} video {v0}"
    );
    assert!(
        (a1 - v1).abs() <= 0.040 + slack_end,
        "ends differ: audio {a1} video {v1}"
    );
}

#[test]
fn offline_mp4_from_audio_src_is_in_sync_with_default_queues() {
    init();
    let _wd = watchdog(
        "the offline audio_src MP4 pipeline",
        Duration::from_secs(120),
    );
    let out = out_file("offline.mp4");
    let p = mux_pipeline(&file_source(), "mp4mux", "audioconvert ! avenc_aac", &out);
    run_pipeline(&p, Duration::from_secs(100)).expect("the offline audio_src pipeline");
    // 10.8 s of speech: 172 800 samples / 640 = 270 frames.
    assert_eq!(video_frames(&out), 270);
    // AAC pads its last packet to 1024 samples (64 ms at 16 kHz): the packets end up to that
    // much after the audio does.
    assert_starts_and_ends_together(&out, 0.064);
    assert_in_sync(&out);
}

#[test]
fn offline_pcm_from_audio_src_ends_with_the_video() {
    // Raw PCM in Matroska: no codec padding, so the ends are compared exactly.
    init();
    let _wd = watchdog(
        "the offline audio_src MKV pipeline",
        Duration::from_secs(120),
    );
    let out = out_file("offline.mkv");
    let p = mux_pipeline(&file_source(), "matroskamux", "audioconvert", &out);
    run_pipeline(&p, Duration::from_secs(100)).expect("the offline audio_src pipeline");
    assert_eq!(video_frames(&out), 270);
    assert_starts_and_ends_together(&out, 0.0);
}

#[test]
fn live_mp4_from_audio_src_is_in_sync_with_default_queues() {
    init();
    let _wd = watchdog("the live audio_src MP4 pipeline", Duration::from_secs(120));
    let out = out_file("live.mp4");
    // 8 s of a live source at real-time speed, 40 ms buffers.
    let source = "audiotestsrc is-live=true wave=pink-noise num-buffers=200 samplesperbuffer=640 \
                  ! audio/x-raw,rate=16000,channels=1,format=F32LE";
    let p = mux_pipeline(source, "mp4mux", "audioconvert ! avenc_aac", &out);
    run_pipeline(&p, Duration::from_secs(100)).expect("the live audio_src pipeline");
    // A file sink does not sync: no deadlines, every frame generated, exactly floor(N / 640).
    assert_eq!(video_frames(&out), 200);
    assert_starts_and_ends_together(&out, 0.064);
    assert_in_sync(&out);
}

/// What one pad saw: (pts, duration, bytes) per buffer.
type Seen = Arc<Mutex<Vec<(Option<gst::ClockTime>, Option<gst::ClockTime>, Vec<u8>)>>>;

fn record(pad: &gst::Pad) -> Seen {
    let seen: Seen = Arc::default();
    let s2 = seen.clone();
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        if let Some(b) = info.buffer() {
            s2.lock()
                .unwrap()
                .push((b.pts(), b.duration(), bytes(&b.to_owned())));
        }
        gst::PadProbeReturn::Ok
    });
    seen
}

#[test]
fn audio_src_carries_the_input_unchanged_and_never_ahead_of_the_video() {
    init();
    let _wd = watchdog(
        "the audio_src pass-through pipeline",
        Duration::from_secs(120),
    );
    let desc = format!(
        "{} ! audio/x-raw,format=F32LE,rate=16000,channels=1 ! dawnavatar name=a image={} \
         model-path={} execution-provider=cpu ! fakesink  a.audio_src ! fakesink name=asink",
        file_source(),
        data(PORTRAIT).display(),
        pack("tiny128").display()
    );
    let p = gst::parse::launch(&desc)
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
    let a = p.by_name("a").unwrap();
    let input = record(&a.static_pad("sink").unwrap());
    let output = record(&a.static_pad("audio_src").unwrap());
    // The release rule, checked as each buffer leaves: the samples it ends at are covered by
    // frames that exist (640 samples per frame), or every frame of the stream exists.
    let early = Arc::new(Mutex::new(Vec::new()));
    let (e2, a2) = (early.clone(), a.downgrade());
    let sent = Arc::new(Mutex::new(0u64));
    a.static_pad("audio_src")
        .unwrap()
        .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            let (Some(b), Some(a)) = (info.buffer(), a2.upgrade()) else {
                return gst::PadProbeReturn::Ok;
            };
            let mut sent = sent.lock().unwrap();
            *sent += b.size() as u64 / 4;
            let generated = a.property::<u64>("frames-generated");
            if *sent > generated * 640 && generated < 270 {
                e2.lock().unwrap().push((*sent, generated));
            }
            gst::PadProbeReturn::Ok
        });
    run_pipeline(&p, Duration::from_secs(100)).expect("the pass-through pipeline");

    let (input, output) = (input.lock().unwrap(), output.lock().unwrap());
    assert!(!input.is_empty());
    assert_eq!(
        output.len(),
        input.len(),
        "every input buffer leaves audio_src once"
    );
    for (i, (inp, out)) in input.iter().zip(output.iter()).enumerate() {
        assert_eq!(inp.0, out.0, "buffer {i}: timestamp changed");
        assert_eq!(inp.1, out.1, "buffer {i}: duration changed");
        assert!(inp.2 == out.2, "buffer {i}: samples changed");
    }
    let samples: usize = output.iter().map(|b| b.2.len() / 4).sum();
    assert_eq!(samples, 172_800, "the whole file, tail included");
    let early = early.lock().unwrap();
    assert!(
        early.is_empty(),
        "audio released ahead of the video (samples sent, frames generated): {early:?}"
    );
    assert_eq!(a.property::<u64>("frames-generated"), 270);
}
