//! The element never hangs: live sources that lose buffers, GAP storms and discontinuities,
//! flushes, seeks and state changes in the middle of a model run, and hundreds of state
//! cycles. Every test runs under a watchdog that fails the run, naming what hung.

mod common;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use gst::prelude::*;

fn launch(desc: &str) -> gst::Pipeline {
    init();
    gst::parse::launch(desc)
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap()
}

/// Waits for EOS or an error on the bus (the watchdog bounds the wait).
fn wait_eos(pipeline: &gst::Pipeline) -> Result<(), String> {
    let bus = pipeline.bus().unwrap();
    for msg in bus.iter_timed(gst::ClockTime::NONE) {
        match msg.view() {
            gst::MessageView::Eos(_) => return Ok(()),
            gst::MessageView::Error(e) => return Err(e.error().to_string()),
            _ => {}
        }
    }
    unreachable!()
}

/// The deadlock: a live source whose buffers get lost on the way, with every drop rate
/// and buffer size, run to EOS or stopped half way; frames stay on the 40 ms grid.
#[test]
fn live_source_that_loses_buffers_never_hangs() {
    let drops = [0.1, 0.3, 0.5, 0.7];
    let sizes = [160, 320, 640, 1000, 1600];
    for run in 0..32 {
        let (drop, spb) = (drops[run % drops.len()], sizes[run % sizes.len()]);
        let buffers = 16_000 / spb; // one second of audio
        let desc = format!(
            "audiotestsrc is-live=true wave=pink-noise num-buffers={buffers} samplesperbuffer={spb} ! \
             audio/x-raw,rate=16000,channels=1,format=F32LE ! identity drop-probability={drop} ! \
             dawnavatar model-path={} image={} execution-provider=cpu chunk-frames=4 \
             context-frames=4 lookahead-frames=2 sampling-steps=2 latency=300 ! videoconvert ! \
             appsink name=sink sync=true",
            pack("tiny128").display(),
            data("skimage_astronaut_128.png").display()
        );
        let what = format!("live pipeline run {run} (drop {drop}, {spb} samples per buffer)");
        let _wd = watchdog(&what, Duration::from_secs(60));
        let pipeline = launch(&desc);
        let pts = collect_pts(&pipeline);
        pipeline.set_state(gst::State::Playing).unwrap();
        if run % 4 == 3 {
            // Straight to NULL in the middle of the stream.
            std::thread::sleep(Duration::from_millis(300 + 97 * run as u64 % 700));
        } else {
            wait_eos(&pipeline).unwrap_or_else(|e| panic!("{what}: {e}"));
        }
        pipeline.set_state(gst::State::Null).unwrap();
        let pts = pts.lock().unwrap().clone();
        assert_on_grid(&pts, &what);
        if run % 4 != 3 {
            assert!(pts.len() >= 10, "{what}: only {} frames", pts.len());
        }
    }
}

/// Buffers, GAP events (overlapping data, in storms, at the end) and timestamp jumps both ways,
/// interleaved: the timeline has no hole and no span twice, live and not.
#[test]
fn gap_storms_and_discontinuities_leave_no_hole_and_no_overlap() {
    let speech = speech();
    let ms = gst::ClockTime::from_mseconds;
    let s = |t: u64| (t * 16) as usize; // sample index at t ms
    for live in [false, true] {
        let what = format!("GAP storm ({})", if live { "live" } else { "not live" });
        let _wd = watchdog(&what, Duration::from_secs(60));
        let e = avatar(
            "tiny64",
            &[
                ("chunk-frames", 8u32.to_value()),
                ("context-frames", 4i32.to_value()),
                ("lookahead-frames", 2i32.to_value()),
                ("sampling-steps", 2u32.to_value()),
            ],
        );
        let mut h = gst_check::Harness::with_element(&e, Some("sink"), Some("src"));
        h.set_live(live);
        h.set_src_caps(audio_caps_f32());
        // Live GAPs are filled up to the present: let the present be far ahead.
        h.set_time(gst::ClockTime::from_seconds(60)).unwrap();
        h.play();
        let gap = |h: &mut gst_check::Harness, t: u64, d: u64| {
            assert!(h.push_event(gst::event::Gap::builder(ms(t)).duration(ms(d)).build()));
        };
        let push = |h: &mut gst_check::Harness, t0: u64, t1: u64| {
            let b = f32_buffer(&speech[s(t0)..s(t1)], s(t0) as u64);
            assert_eq!(h.push(b), Ok(gst::FlowSuccess::Ok));
        };
        push(&mut h, 0, 500);
        gap(&mut h, 200, 100); // inside data already there: nothing
        gap(&mut h, 500, 300);
        push(&mut h, 800, 1000);
        push(&mut h, 900, 1200); // goes back 100 ms: that part is dropped
        push(&mut h, 1500, 1700); // a hole of 300 ms: silence
        for i in 0..50 {
            gap(&mut h, 1700 + 2 * i, 2); // a storm of 2 ms GAPs
        }
        push(&mut h, 1800, 2000);
        assert!(h.push_event(gst::event::Eos::new()));
        let frames = pull_until_eos(&mut h);
        let pts: Vec<_> = frames.iter().map(|b| b.pts().unwrap()).collect();
        assert_eq!(pts.len(), 50, "{what}: 2 s of timeline give 50 frames");
        assert_eq!(pts[0], gst::ClockTime::ZERO, "{what}");
        assert_on_grid(&pts, &what);
    }
}

/// The pack and steps of the slow run: tiny128 at 999 steps per chunk, or, to measure the
/// figure of docs/performance.md, `DAWN_CANCEL_PACK` (a random-weight export of the real
/// architecture) at 20 steps, where one offline chunk runs for minutes on the CPU.
fn slow_pack() -> (PathBuf, u32, Duration) {
    match std::env::var_os("DAWN_CANCEL_PACK") {
        // 5 s in: inside the denoiser, past the audio encoder.
        Some(p) => (PathBuf::from(p), 20, Duration::from_secs(5)),
        None => (pack("tiny128"), 999, Duration::from_millis(500)),
    }
}

/// A pipeline whose model run takes minutes at the asked steps: flushes, seeks and NULL
/// cancel the run instead of waiting for it.
fn slow_pipeline() -> (gst::Pipeline, Arc<Mutex<Option<Instant>>>) {
    let (pack, steps, _) = slow_pack();
    let desc = format!(
        "filesrc location={} ! wavparse ! audioconvert ! audioresample ! dawnavatar name=a \
         model-path={} image={} execution-provider=cpu sampling-steps={steps} ! appsink name=sink sync=false",
        data("speech_orig_16k.wav").display(),
        pack.display(),
        data("skimage_astronaut_128.png").display()
    );
    let pipeline = launch(&desc);
    let started = Arc::new(Mutex::new(None));
    let s2 = started.clone();
    pipeline
        .by_name("a")
        .unwrap()
        .connect("chunk-started", false, move |_| {
            s2.lock().unwrap().get_or_insert_with(Instant::now);
            None
        });
    (pipeline, started)
}

fn wait_for_run(started: &Mutex<Option<Instant>>) {
    while started.lock().unwrap().is_none() {
        std::thread::sleep(Duration::from_millis(10));
    }
    // Well inside the run (which takes over a minute here).
    std::thread::sleep(slow_pack().2);
}

#[test]
fn seek_and_null_during_a_model_run_cancel_it() {
    let _wd = watchdog("seek / NULL during a model run", Duration::from_secs(120));
    let (pipeline, started) = slow_pipeline();
    pipeline.set_state(gst::State::Paused).unwrap();
    wait_for_run(&started);
    let t = Instant::now();
    pipeline
        .seek_simple(
            gst::SeekFlags::FLUSH | gst::SeekFlags::ACCURATE,
            gst::ClockTime::from_seconds(2),
        )
        .unwrap();
    let seek = t.elapsed();
    eprintln!("flushing seek returned after {seek:?} during a model run");
    // Without cancellation the seek waits out a run of more than a minute.
    assert!(seek < Duration::from_secs(10), "seek took {seek:?}");
    *started.lock().unwrap() = None;
    wait_for_run(&started);
    let t = Instant::now();
    pipeline.set_state(gst::State::Null).unwrap();
    let null = t.elapsed();
    eprintln!("PAUSED -> NULL returned after {null:?} during a model run");
    assert!(null < Duration::from_secs(10), "NULL took {null:?}");
}

#[test]
fn flush_during_a_model_run_restarts_on_the_new_audio() {
    let _wd = watchdog("flush during a model run", Duration::from_secs(120));
    let speech = speech();
    let e = avatar("tiny128", &[("sampling-steps", 999u32.to_value())]);
    let started = Arc::new(Mutex::new(None));
    let s2 = started.clone();
    e.connect("chunk-started", false, move |_| {
        s2.lock().unwrap().get_or_insert_with(Instant::now);
        None
    });
    let mut h = gst_check::Harness::with_element(&e, Some("sink"), Some("src"));
    h.set_live(false);
    h.set_src_caps(audio_caps_f32());
    h.play();
    h.push(f32_buffer(&speech[..640 * 60], 0)).unwrap();
    assert!(h.push_event(gst::event::Eos::new()));
    wait_for_run(&started);
    let t = Instant::now();
    assert!(h.push_event(gst::event::FlushStart::new()));
    assert!(h.push_event(gst::event::FlushStop::new(true)));
    let flush = t.elapsed();
    assert!(flush < Duration::from_secs(10), "flush took {flush:?}");
    while h.try_pull().is_some() {}
    let seg = gst::FormattedSegment::<gst::ClockTime>::new();
    assert!(h.push_event(gst::event::Segment::new(&seg)));
    h.push(f32_buffer(&speech[..640 * 12], 0)).unwrap();
    assert!(h.push_event(gst::event::Eos::new()));
    let frames = pull_until_eos(&mut h);
    assert_eq!(
        frames.len(),
        12,
        "after the flush only the new audio counts"
    );
}
