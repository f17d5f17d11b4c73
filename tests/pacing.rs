//! Live pacing on the pipeline clock, under a `GstTestClock`: the test holds one chunk's
//! inference back (the `chunk-started` signal blocks) while it moves the clock past the
//! deadlines of that chunk's frames, then counts exactly which frames were repeated and which
//! generated frames were dropped. Nothing here depends on how fast the machine is.

mod common;

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use gst::prelude::*;

const CHUNK: u64 = 8;
const FRAMES: u64 = 40;

fn stat(e: &gst::Element, name: &str) -> u64 {
    e.property::<gst::Structure>("stats")
        .get::<u64>(name)
        .unwrap()
}

fn wait_until(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ok() {
        assert!(Instant::now() < deadline, "waited 60 s for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Releases every clock wait that is due at the test clock's current time, as a real clock
/// would; the test only moves the time. Stops when the returned guard drops.
fn drive(clock: &gst_check::TestClock) -> impl Drop {
    struct Stop(Arc<std::sync::atomic::AtomicBool>);
    impl Drop for Stop {
        fn drop(&mut self) {
            self.0.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (clock, s2) = (clock.clone(), stop.clone());
    std::thread::spawn(move || {
        while !s2.load(std::sync::atomic::Ordering::SeqCst) {
            let due = clock
                .peek_next_pending_id()
                .is_some_and(|id| id.time() <= clock.time());
            if due {
                clock.process_next_clock_id();
            } else {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    });
    Stop(stop)
}

#[test]
fn a_late_chunk_repeats_exactly_the_frames_whose_deadlines_passed() {
    init();
    let _wd = watchdog("pacing under a test clock", Duration::from_secs(240));
    let desc = format!(
        "appsrc name=src is-live=true format=time ! dawnavatar name=a model-path={} image={} \
         execution-provider=cpu chunk-frames={CHUNK} context-frames=4 lookahead-frames=2 \
         sampling-steps=1 latency=200 ! fakesink name=sink sync=true",
        pack("tiny64").display(),
        data("skimage_astronaut_128.png").display()
    );
    let (pipeline, src) = appsrc_pipeline(&desc);
    let clock = gst_check::TestClock::new();
    pipeline.use_clock(Some(&clock));
    let _driver = drive(&clock);
    let avatar = pipeline.by_name("a").unwrap();

    // Chunk 1 (frames 8..16) waits for the test's word before it runs.
    let (release, gate) = mpsc::channel::<()>();
    let gate = Arc::new(Mutex::new(gate));
    let (entered_tx, entered) = mpsc::channel::<()>();
    let entered_tx = Mutex::new(entered_tx);
    avatar.connect("chunk-started", false, move |args| {
        if args[1].get::<u64>().unwrap() == 1 {
            let _ = entered_tx.lock().unwrap().send(());
            let _ = gate.lock().unwrap().recv_timeout(Duration::from_secs(120));
        }
        None
    });

    let rendered = Arc::new(Mutex::new(Vec::new()));
    let r2 = rendered.clone();
    let sink = pipeline.by_name("sink").unwrap();
    sink.set_property("signal-handoffs", true);
    sink.connect("handoff", false, move |args| {
        let b = args[1].get::<gst::Buffer>().unwrap();
        r2.lock().unwrap().push(b.pts().unwrap());
        None
    });

    pipeline.set_state(gst::State::Playing).unwrap();
    // All the audio at once, captured from running time 0, then EOS: audio is never late.
    let speech = speech();
    for (i, c) in speech[..(FRAMES * 640) as usize].chunks(640).enumerate() {
        src.push_buffer(f32_buffer(c, i as u64 * 640)).unwrap();
    }
    src.end_of_stream().unwrap();

    let mut q = gst::query::Latency::new();
    wait_until("a live pipeline latency", || {
        pipeline.query(&mut q) && q.result().0
    });
    let latency = q.result().1;
    let frame = gst::ClockTime::from_mseconds(40);
    // A frame is due one frame before it must render (pts + latency).
    let deadline = |k: u64| frame * k + latency - frame;

    entered
        .recv_timeout(Duration::from_secs(60))
        .expect("chunk 1 never started");
    // Inference of chunk 1 is late: the clock passes the deadlines of all its frames.
    clock.set_time(deadline(2 * CHUNK - 1) + gst::ClockTime::from_mseconds(1));
    wait_until("the 8 frames of chunk 1 to be repeated", || {
        stat(&avatar, "frames-repeated") == CHUNK
    });
    release.send(()).unwrap();
    wait_until("chunk 1's late frames to be dropped", || {
        stat(&avatar, "frames-dropped") == CHUNK
    });

    // From here inference is on time: the clock only moves once the next frame exists.
    for k in 2 * CHUNK..FRAMES {
        wait_until(&format!("frame {k} generated"), || {
            stat(&avatar, "frames-generated") >= (k + 2).min(FRAMES)
        });
        clock.set_time(deadline(k + 1));
    }
    clock.set_time(deadline(FRAMES + 2));
    let bus = pipeline.bus().unwrap();
    let eos = bus.timed_pop_filtered(
        gst::ClockTime::from_seconds(60),
        &[gst::MessageType::Eos, gst::MessageType::Error],
    );
    assert!(
        matches!(
            eos.as_ref().map(|m| m.view()),
            Some(gst::MessageView::Eos(_))
        ),
        "no EOS: {eos:?}"
    );
    let (repeated, dropped, pushed) = (
        stat(&avatar, "frames-repeated"),
        stat(&avatar, "frames-dropped"),
        stat(&avatar, "frames-pushed"),
    );
    pipeline.set_state(gst::State::Null).unwrap();
    assert_eq!(
        (repeated, dropped, pushed),
        (CHUNK, CHUNK, FRAMES - CHUNK),
        "(repeated, dropped, pushed)"
    );
    let rendered = rendered.lock().unwrap().clone();
    assert_eq!(
        rendered.len() as u64,
        FRAMES,
        "floor(N / 640) frames, no more"
    );
    assert_on_grid(&rendered, "paced frames");
}
