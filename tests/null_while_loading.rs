//! NULL asked while the pack is still loading returns cleanly and leaves no thread behind.
//! Threads are counted for the whole process, so this test has a binary of its own.

mod common;

use std::time::Duration;

use common::*;
use gst::prelude::*;

fn launch(desc: &str) -> gst::Pipeline {
    init();
    gst::parse::launch(desc)
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap()
}

fn loading_pipeline() -> gst::Pipeline {
    launch(&format!(
        "filesrc location={} ! wavparse ! audioconvert ! audioresample ! dawnavatar \
         model-path={} image={} execution-provider=cpu sampling-steps=999 ! fakesink sync=false",
        data("speech_orig_16k.wav").display(),
        pack("tiny128").display(),
        data("skimage_astronaut_128.png").display()
    ))
}

/// Loads the pack once to the end, so that what lives for the whole process (ONNX Runtime's
/// environment and its one thread pool) exists before threads are counted.
fn warm_up() {
    let pipeline = launch(&format!(
        "filesrc location={} ! wavparse ! audioconvert ! audioresample ! dawnavatar \
         model-path={} image={} execution-provider=cpu ! fakesink",
        data("speech_orig_16k.wav").display(),
        pack("tiny128").display(),
        data("skimage_astronaut_128.png").display()
    ));
    pipeline.set_state(gst::State::Paused).unwrap();
    let (result, state, _) = pipeline.state(gst::ClockTime::from_seconds(60));
    assert!(
        result.is_ok() && state == gst::State::Paused,
        "warm-up pipeline did not preroll: {result:?}, {state:?}"
    );
    pipeline.set_state(gst::State::Null).unwrap();
}

/// NULL asked from another thread while the first state change is still loading the pack.
#[test]
fn null_during_model_loading_returns_cleanly() {
    let _wd = watchdog("NULL during model loading", Duration::from_secs(120));
    warm_up();
    let (threads_before, _) = threads_and_rss();
    for round in 0..10 {
        let pipeline = loading_pipeline();
        let p2 = pipeline.clone();
        let starter = std::thread::spawn(move || {
            let _ = p2.set_state(gst::State::Playing);
        });
        std::thread::sleep(Duration::from_millis(5 * round));
        pipeline.set_state(gst::State::Null).unwrap();
        starter.join().unwrap();
        pipeline.set_state(gst::State::Null).unwrap();
        assert_eq!(pipeline.current_state(), gst::State::Null);
    }
    std::thread::sleep(Duration::from_millis(500));
    let (threads_after, _) = threads_and_rss();
    assert!(
        threads_after <= threads_before + 2,
        "threads {threads_before} -> {threads_after}: a state change left threads behind"
    );
}
