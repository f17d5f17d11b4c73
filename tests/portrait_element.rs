//! The element's portrait handling: face detection reported in `dawn-portrait` (with the
//! built-in face models or a `face-models` directory), full-portrait output, strict mode, and
//! swapping the portrait while a live stream plays.

mod common;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use gst::prelude::*;

/// The project's `models/face/` (the files the built-in models are compiled from).
fn face_models() -> PathBuf {
    root().join("models/face")
}

/// Runs speech → dawnavatar(props) with the tiny64 pack on the CPU → appsink; see [`run_avatar`].
fn run(
    props: &str,
    seconds: f64,
) -> Result<(Vec<gst::Structure>, Option<gst::Caps>, usize), String> {
    run_avatar(
        &format!(
            "model-path={} execution-provider=cpu chunk-frames=8 sampling-steps=3 {props}",
            pack("tiny64").display()
        ),
        seconds,
    )
}

/// Runs `seconds` of speech → dawnavatar(props) → appsink; returns the bus messages'
/// `dawn-portrait` structures, the output caps and the number of frames, or the error.
/// Fails the test when no frame or EOS comes for 120 s.
fn run_avatar(
    props: &str,
    seconds: f64,
) -> Result<(Vec<gst::Structure>, Option<gst::Caps>, usize), String> {
    init();
    let n = (seconds * 16_000.0) as usize;
    let (pipeline, src) = appsrc_pipeline(&format!(
        "appsrc name=src format=time ! dawnavatar name=d {props} ! appsink name=sink sync=false"
    ));
    let sink = pipeline
        .by_name("sink")
        .unwrap()
        .downcast::<gst_app::AppSink>()
        .unwrap();
    let bus = pipeline.bus().unwrap();
    if pipeline.set_state(gst::State::Playing).is_err() {
        let e = first_error(&bus).unwrap_or_default();
        pipeline.set_state(gst::State::Null).unwrap();
        return Err(e);
    }
    src.push_buffer(f32_buffer(&speech()[..n], 0)).unwrap();
    src.end_of_stream().unwrap();
    let mut frames = 0;
    let mut caps = None;
    let mut messages = Vec::new();
    let mut last_progress = Instant::now();
    let failed = |m: &[gst::Message]| m.iter().any(|m| m.type_() == gst::MessageType::Error);
    while !sink.is_eos() && !failed(&messages) {
        if let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_mseconds(100)) {
            frames += 1;
            caps = sample.caps().map(|c| c.to_owned());
            last_progress = Instant::now();
        }
        messages.extend(std::iter::from_fn(|| bus.pop()));
        if last_progress.elapsed() > Duration::from_secs(120) {
            pipeline.set_state(gst::State::Null).unwrap();
            panic!(
                "dawnavatar ({props}) hung: no frame and no EOS for 120 s after {frames} frames"
            );
        }
    }
    messages.extend(std::iter::from_fn(|| bus.pop()));
    let mut reports = Vec::new();
    let mut err = None;
    for msg in &messages {
        match msg.view() {
            gst::MessageView::Element(e)
                if e.structure()
                    .map(|s| s.name() == "dawn-portrait")
                    .unwrap_or(false) =>
            {
                reports.push(e.structure().unwrap().to_owned())
            }
            gst::MessageView::Error(e) => err = Some(e.error().to_string()),
            _ => {}
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
    match err {
        Some(e) => Err(e),
        None => Ok((reports, caps, frames)),
    }
}

#[test]
fn plain_pipeline_finds_the_face_with_the_built_in_models() {
    // Exactly what a new user types: no face-models, no other property.
    let (reports, caps, frames) = run_avatar(
        &format!(
            "image={} model-path={}",
            data("mpl_grace_hopper.jpg").display(),
            pack("tiny128").display()
        ),
        0.4,
    )
    .unwrap();
    assert_eq!(frames, 10);
    assert_eq!(reports.len(), 1, "one dawn-portrait message");
    let r = &reports[0];
    println!("{r}");
    assert!(r.get::<bool>("detected").unwrap(), "{r}");
    assert_eq!(r.get::<String>("face-models").unwrap(), "built-in");
    assert_eq!(r.get::<String>("pose-source").unwrap(), "measured");
    assert!(r.get::<String>("warnings").unwrap().is_empty(), "{r}");
    assert!(r.get::<f64>("yaw").unwrap().abs() < 10.0, "{r}");
    let info = gst_video::VideoInfo::from_caps(&caps.unwrap()).unwrap();
    assert_eq!((info.width(), info.height()), (128, 128));
}

#[test]
fn dawn_portrait_reports_the_detected_face() {
    let models = face_models();
    let (reports, caps, frames) = run(
        &format!(
            "image={} face-models={}",
            data("mpl_grace_hopper.jpg").display(),
            models.display()
        ),
        1.0,
    )
    .unwrap();
    assert_eq!(frames, 25);
    let r = &reports[0];
    assert!(r.get::<bool>("detected").unwrap());
    let (x, y, w, h) = (
        r.get::<i32>("face-x").unwrap(),
        r.get::<i32>("face-y").unwrap(),
        r.get::<i32>("face-width").unwrap(),
        r.get::<i32>("face-height").unwrap(),
    );
    // Grace Hopper's face is in the upper middle of the 512×600 photo.
    assert!(
        x > 100 && x + w < 420 && y > 20 && y + h < 400 && w > 100 && h > 100,
        "box {x},{y} {w}x{h}"
    );
    assert!(r.get::<f64>("yaw").unwrap().abs() < 10.0);
    let (el, er) = (
        r.get::<f64>("eye-left").unwrap(),
        r.get::<f64>("eye-right").unwrap(),
    );
    assert!(
        (0.15..0.5).contains(&el) && (0.15..0.5).contains(&er),
        "eyes {el} {er}"
    );
    let info = gst_video::VideoInfo::from_caps(&caps.unwrap()).unwrap();
    assert_eq!((info.width(), info.height()), (64, 64));
}

#[test]
fn portrait_output_pastes_the_face_into_the_whole_photo() {
    let models = face_models();
    let (_, caps, frames) = run(
        &format!(
            "image={} face-models={} output=portrait",
            data("mpl_grace_hopper.jpg").display(),
            models.display()
        ),
        0.6,
    )
    .unwrap();
    assert_eq!(frames, 15);
    let info = gst_video::VideoInfo::from_caps(&caps.unwrap()).unwrap();
    assert_eq!(
        (info.width(), info.height()),
        (512, 600),
        "the photo's own size"
    );
    let (_, caps, _) = run(
        &format!(
            "image={} face-models={} output=portrait output-width=1280 output-height=720",
            data("mpl_grace_hopper.jpg").display(),
            models.display()
        ),
        0.2,
    )
    .unwrap();
    let info = gst_video::VideoInfo::from_caps(&caps.unwrap()).unwrap();
    assert_eq!((info.width(), info.height()), (1280, 720));
}

#[test]
fn no_face_falls_back_with_a_warning_or_fails_in_strict_mode() {
    let models = face_models();
    // A smooth gradient: no face anywhere.
    let img = image::RgbImage::from_fn(320, 240, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 128])
    });
    let path = std::env::temp_dir().join(format!("gst-dawn-noface-{}.png", std::process::id()));
    img.save(&path).unwrap();
    let (reports, _, frames) = run(
        &format!("image={} face-models={}", path.display(), models.display()),
        0.4,
    )
    .unwrap();
    assert_eq!(frames, 10);
    assert!(!reports[0].get::<bool>("detected").unwrap());
    assert!(
        reports[0]
            .get::<String>("warnings")
            .unwrap()
            .contains("no face")
    );
    let err = run(
        &format!(
            "image={} face-models={} strict=true",
            path.display(),
            models.display()
        ),
        0.4,
    )
    .unwrap_err();
    assert!(
        err.contains("no face") && err.contains(path.file_name().unwrap().to_str().unwrap()),
        "{err}"
    );
}

#[test]
fn bad_face_model_directory_is_an_error_naming_it() {
    let err = run(
        &format!(
            "image={} face-models=/nonexistent/face",
            data("mpl_grace_hopper.jpg").display()
        ),
        0.2,
    )
    .unwrap_err();
    assert!(
        err.contains("/nonexistent/face") && err.contains("face-models"),
        "{err}"
    );
}

#[test]
fn swapping_the_portrait_while_live_keeps_25_fps() {
    init();
    let (pipeline, src) = appsrc_pipeline(&format!(
        "appsrc name=src is-live=true format=time ! dawnavatar name=d model-path={} image={} \
         execution-provider=cpu chunk-frames=4 context-frames=4 lookahead-frames=2 sampling-steps=3 latency=400 ! \
         appsink name=sink sync=true",
        pack("tiny64").display(),
        data("skimage_astronaut.png").display()
    ));
    let avatar = pipeline.by_name("d").unwrap();
    let sink = pipeline
        .by_name("sink")
        .unwrap()
        .downcast::<gst_app::AppSink>()
        .unwrap();
    let frames = Arc::new(Mutex::new(Vec::new()));
    let f2 = frames.clone();
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |s| {
                let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                let b = sample.buffer().unwrap();
                f2.lock()
                    .unwrap()
                    .push((b.pts().unwrap(), b.map_readable().unwrap().to_vec()));
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    let reports = Arc::new(Mutex::new(0));
    let r2 = reports.clone();
    pipeline.bus().unwrap().set_sync_handler(move |_, msg| {
        if let gst::MessageView::Element(e) = msg.view()
            && e.structure().is_some_and(|s| s.name() == "dawn-portrait")
        {
            *r2.lock().unwrap() += 1;
        }
        gst::BusSyncReply::Pass
    });
    pipeline.set_state(gst::State::Playing).unwrap();
    let speech = speech();
    let t0 = Instant::now();
    let mut swapped = false;
    for (i, c) in speech[..16_000 * 3].chunks(320).enumerate() {
        let due = Duration::from_millis(i as u64 * 20);
        if let Some(w) = due.checked_sub(t0.elapsed()) {
            std::thread::sleep(w);
        }
        if !swapped && i * 320 >= 16_000 {
            avatar.set_property("image", data("mpl_grace_hopper.jpg").to_str().unwrap());
            swapped = true;
        }
        let _ = src.push_buffer(f32_buffer(c, (i * 320) as u64));
    }
    std::thread::sleep(Duration::from_millis(1200));
    let _ = src.end_of_stream();
    let bus = pipeline.bus().unwrap();
    let _ = bus.timed_pop_filtered(gst::ClockTime::from_seconds(10), &[gst::MessageType::Eos]);
    pipeline.set_state(gst::State::Null).unwrap();
    let reports = *reports.lock().unwrap();
    let frames = frames.lock().unwrap();
    assert!(frames.len() >= 74, "{} frames for 3 s", frames.len());
    for (k, (pts, _)) in frames.iter().enumerate() {
        assert_eq!(
            *pts,
            gst::ClockTime::from_mseconds(40 * k as u64),
            "frame {k}: no gap, no stall"
        );
    }
    assert_eq!(reports, 2, "one dawn-portrait message per portrait");
    // The last frames show the new portrait: they differ strongly from the first ones.
    let diff = |a: &[u8], b: &[u8]| {
        a.iter()
            .zip(b)
            .map(|(x, y)| (*x as f64 - *y as f64).abs())
            .sum::<f64>()
            / a.len() as f64
    };
    let (first, last) = (&frames[5].1, &frames[frames.len() - 5].1);
    assert!(
        diff(first, last) > 20.0,
        "the portrait did not change (mean diff {})",
        diff(first, last)
    );
}
