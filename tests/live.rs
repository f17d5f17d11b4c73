//! Live behaviour with a real clock: 25 fps even when the audio stops, latency answered
//! honestly, and state changes/flushes that never deadlock.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use gst::prelude::*;

fn live_pipeline(
    extra: &str,
) -> (
    gst::Pipeline,
    gst_app::AppSrc,
    Arc<Mutex<Vec<gst::ClockTime>>>,
    gst::Element,
) {
    init();
    let desc = format!(
        "appsrc name=src is-live=true format=time ! dawnavatar name=avatar model-path={} image={} \
         execution-provider=cpu chunk-frames=4 context-frames=4 lookahead-frames=2 sampling-steps=4 {extra} ! \
         appsink name=sink sync=true emit-signals=false",
        pack("tiny64").display(),
        data("skimage_astronaut_128.png").display()
    );
    let (pipeline, src) = appsrc_pipeline(&desc);
    let pts = collect_pts(&pipeline);
    let avatar = pipeline.by_name("avatar").unwrap();
    (pipeline, src, pts, avatar)
}

/// Pushes `samples` as 20 ms buffers paced by the wall clock, timestamped from `start`.
fn push_live(src: &gst_app::AppSrc, samples: &[f32], start_sample: u64, t0: Instant) {
    for (i, c) in samples.chunks(320).enumerate() {
        let offset = start_sample + (i * 320) as u64;
        let due = Duration::from_nanos(offset * 1_000_000_000 / 16_000);
        if let Some(wait) = due.checked_sub(t0.elapsed()) {
            std::thread::sleep(wait);
        }
        let _ = src.push_buffer(f32_buffer(c, offset));
    }
}

#[test]
fn live_source_with_a_hole_keeps_25_fps() {
    let (pipeline, src, pts, avatar) = live_pipeline("latency=300");
    let speech = speech();
    pipeline.set_state(gst::State::Playing).unwrap();
    let t0 = Instant::now();
    // 1.5 s of speech, 1 s with no audio at all, then 1.5 s more (timestamps jump).
    push_live(&src, &speech[..24_000], 0, t0);
    std::thread::sleep(Duration::from_secs(1));
    push_live(&src, &speech[24_000..48_000], 40_000, t0);
    // Let the last frames out before EOS (latency + a chunk).
    std::thread::sleep(Duration::from_millis(1500));
    let _ = src.end_of_stream();
    let bus = pipeline.bus().unwrap();
    let _ = bus.timed_pop_filtered(
        gst::ClockTime::from_seconds(20),
        &[gst::MessageType::Eos, gst::MessageType::Error],
    );
    let repeated: u64 = avatar.property("frames-repeated");
    let generated: u64 = avatar.property("frames-generated");
    pipeline.set_state(gst::State::Null).unwrap();
    let pts = pts.lock().unwrap().clone();
    // 4 s of timeline at 25 fps, every frame slot filled exactly once and in order.
    assert!(
        pts.len() >= 95,
        "only {} frames for 4 s of live timeline",
        pts.len()
    );
    for (k, p) in pts.iter().enumerate() {
        assert_eq!(
            *p,
            gst::ClockTime::from_mseconds(40 * k as u64),
            "frame {k}"
        );
    }
    assert!(
        repeated > 0,
        "the hole in the audio must have been bridged by repeated frames"
    );
    assert!(generated > 50, "generated {generated}");
    println!(
        "{} frames out, {generated} generated, {repeated} repeated",
        pts.len()
    );
}

#[test]
fn latency_query_adds_the_chunk_wait_and_budget() {
    let (pipeline, src, _pts, _avatar) = live_pipeline("latency=300");
    pipeline.set_state(gst::State::Playing).unwrap();
    let _ = src.push_buffer(f32_buffer(&vec![0.0; 1600], 0));
    std::thread::sleep(Duration::from_millis(300));
    let mut q = gst::query::Latency::new();
    assert!(
        pipeline
            .by_name("avatar")
            .unwrap()
            .static_pad("src")
            .unwrap()
            .query(&mut q)
    );
    let (live, min, _max) = q.result();
    assert!(live);
    // (4 new + 2 look-ahead + 13 audio right context) × 40 ms + 300 ms budget.
    assert_eq!(min, gst::ClockTime::from_mseconds(19 * 40 + 300));
    pipeline.set_state(gst::State::Null).unwrap();
}

#[test]
fn state_changes_and_seeks_never_deadlock() {
    init();
    let desc = format!(
        "audiotestsrc wave=ticks is-live={{LIVE}} samplesperbuffer=320 ! audioconvert ! audioresample ! \
         dawnavatar model-path={} image={} execution-provider=cpu chunk-frames=6 context-frames=2 \
         lookahead-frames=2 sampling-steps=3 ! fakesink sync={{LIVE}}",
        pack("tiny64").display(),
        data("skimage_astronaut_128.png").display()
    );
    let deadline = |what: &str, t: Instant| {
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "{what} took {:?}",
            t.elapsed()
        );
    };
    for round in 0..24 {
        let live = round % 2 == 0;
        let d = desc.replace("{LIVE}", if live { "true" } else { "false" });
        let pipeline = gst::parse::launch(&d)
            .unwrap()
            .downcast::<gst::Pipeline>()
            .unwrap();
        let t = Instant::now();
        pipeline.set_state(gst::State::Playing).unwrap();
        std::thread::sleep(Duration::from_millis((round * 37 % 200) as u64));
        match round % 4 {
            0 => {
                pipeline.set_state(gst::State::Paused).unwrap();
                pipeline.set_state(gst::State::Playing).unwrap();
            }
            1 if !live => {
                let _ =
                    pipeline.seek_simple(gst::SeekFlags::FLUSH, gst::ClockTime::from_mseconds(500));
                std::thread::sleep(Duration::from_millis(100));
            }
            2 => {
                pipeline.set_state(gst::State::Ready).unwrap();
                pipeline.set_state(gst::State::Playing).unwrap();
            }
            _ => {}
        }
        std::thread::sleep(Duration::from_millis(50));
        pipeline.set_state(gst::State::Null).unwrap();
        deadline(&format!("round {round}"), t);
        let bus = pipeline.bus().unwrap();
        while let Some(msg) = bus.pop() {
            if let gst::MessageView::Error(e) = msg.view() {
                panic!("round {round}: {}", e.error());
            }
        }
    }
}
