//! Many avatars, one model: engines are shared per pack and runtime settings, released with
//! their last user, and streams on a shared engine give exactly the frames they give alone.

mod common;

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gst::prelude::*;
use gstdawn::engine::{
    ChunkConfig, Engine, EngineRegistry, PortraitInput, RuntimeConfig, SeededNoise, Stream,
    StreamConfig, runtime::Provider,
};

const WATCHDOG: Duration = Duration::from_secs(180);

fn cpu() -> RuntimeConfig {
    RuntimeConfig {
        provider: Provider::Cpu,
        ..Default::default()
    }
}

fn portrait(e: &Engine) -> PortraitInput {
    let s = e.resolution();
    PortraitInput {
        src_img: (0..3 * s * s)
            .map(|i| 0.2 + 0.3 * ((i % 97) as f32 / 97.0))
            .collect(),
        face_mask: (0..s * s)
            .map(|i| f32::from(u8::from((i / s) > s / 4 && (i / s) < 3 * s / 4)))
            .collect(),
        init_pose: [0.0, 0.0, 0.0, 4.79e-4, 56.5, 64.9],
        init_eye: [0.3, 0.3],
    }
}

#[test]
fn one_engine_per_pack_and_settings_released_with_its_last_user() {
    let registry = EngineRegistry::new();
    let pack = common::pack("tiny64");
    // The same directory spelled another way is the same pack.
    let spelled: PathBuf = pack.parent().unwrap().join(".").join("tiny64");
    let a = registry.get_or_load(&pack, cpu(), &mut |_| {}).unwrap();
    let b = registry.get_or_load(&spelled, cpu(), &mut |_| {}).unwrap();
    assert!(
        Arc::ptr_eq(&a, &b),
        "same pack and settings must share one engine"
    );
    assert_eq!((registry.loads(), registry.live_engines()), (1, 1));

    let other = RuntimeConfig {
        intra_threads: 1,
        ..cpu()
    };
    let c = registry.get_or_load(&pack, other, &mut |_| {}).unwrap();
    assert!(
        !Arc::ptr_eq(&a, &c),
        "other settings must get their own engine"
    );
    assert_eq!((registry.loads(), registry.live_engines()), (2, 2));

    drop((a, c));
    assert_eq!(registry.live_engines(), 1, "b still holds the first engine");
    drop(b);
    assert_eq!(
        registry.live_engines(),
        0,
        "engines must be released with their last user"
    );
    let _d = registry.get_or_load(&pack, cpu(), &mut |_| {}).unwrap();
    assert_eq!(
        registry.loads(),
        3,
        "a released engine is loaded again when needed"
    );
}

#[test]
fn a_pack_that_fails_to_load_is_not_remembered() {
    let registry = EngineRegistry::new();
    let missing = Path::new("/nonexistent/dawn-pack");
    for _ in 0..2 {
        let err = registry
            .get_or_load(missing, cpu(), &mut |_| {})
            .unwrap_err();
        assert!(format!("{err:#}").contains("dawn-pack"), "{err:#}");
    }
    assert_eq!((registry.loads(), registry.live_engines()), (0, 0));
}

/// Runs one whole stream (all audio known) and returns its frames.
fn run_stream(engine: &Engine, seed: u64, audio: &[f32]) -> Vec<f32> {
    let avatar = engine.avatar(portrait(engine)).unwrap();
    let cfg = StreamConfig {
        chunk: ChunkConfig::new(8, 4, 3),
        steps: 3,
        eta: engine.default_eta(),
        decoder_batch: 4,
        planned_samples: Some(audio.len()),
    };
    let mut stream = Stream::new(cfg, Box::new(SeededNoise::new(seed)));
    stream.push_audio(audio);
    stream.finish();
    let mut frames = Vec::new();
    while let Some(chunk) = stream.run_chunk(engine, &avatar, None).unwrap() {
        frames.extend_from_slice(&chunk.frames);
    }
    frames
}

#[test]
fn streams_on_a_shared_engine_give_the_frames_they_give_alone() {
    let registry = EngineRegistry::new();
    let engine = registry
        .get_or_load(&common::pack("tiny128"), cpu(), &mut |_| {})
        .unwrap();
    let speech = common::speech();
    let audio = |i: usize| speech[i * 4000..i * 4000 + 640 * 30].to_vec();
    let alone: Vec<Vec<f32>> = (0..3)
        .map(|i| run_stream(&engine, i as u64 + 1, &audio(i)))
        .collect();
    let (tx, rx) = mpsc::channel();
    for i in 0..3 {
        let (engine, tx, audio) = (engine.clone(), tx.clone(), audio(i));
        std::thread::spawn(move || {
            let frames = run_stream(&engine, i as u64 + 1, &audio);
            tx.send((i, frames)).unwrap();
        });
    }
    let mut together = vec![Vec::new(); 3];
    for _ in 0..3 {
        let (i, frames) = rx
            .recv_timeout(WATCHDOG)
            .expect("a stream on the shared engine hung (no result within 180 s)");
        together[i] = frames;
    }
    for i in 0..3 {
        assert_eq!(alone[i].len(), 30 * 3 * 128 * 128);
        assert!(
            alone[i] == together[i],
            "stream {i}: frames on the shared engine differ from the stream alone"
        );
    }
    assert!(alone[0] != alone[1], "streams with other seeds must differ");
}

/// Speech → N `dawnavatar` (seeds 1..=N, tiny128) → appsink in one pipeline; the frames of
/// each branch, and the registry's counts while the pipeline was playing.
fn run_branches(seeds: &[u64], audio: &[f32]) -> (Vec<Vec<Vec<u8>>>, usize, u64) {
    common::init();
    let pack = common::pack("tiny128");
    let image = common::data("skimage_astronaut_128.png");
    let desc: Vec<String> = seeds
        .iter()
        .enumerate()
        .map(|(i, seed)| {
            format!(
                "appsrc name=src{i} format=time ! dawnavatar model-path={} image={} \
                 execution-provider=cpu seed={seed} chunk-frames=8 context-frames=4 \
                 lookahead-frames=3 sampling-steps=3 ! appsink name=sink{i} sync=false",
                pack.display(),
                image.display()
            )
        })
        .collect();
    let pipeline = gst::parse::launch(&desc.join("  "))
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
    let outputs: Vec<Arc<Mutex<Vec<Vec<u8>>>>> = seeds.iter().map(|_| Arc::default()).collect();
    for (i, out) in outputs.iter().enumerate() {
        let sink = pipeline
            .by_name(&format!("sink{i}"))
            .unwrap()
            .downcast::<gst_app::AppSink>()
            .unwrap();
        let out = out.clone();
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |s| {
                    let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    let buf = sample.buffer().ok_or(gst::FlowError::Error)?;
                    out.lock().unwrap().push(common::bytes(&buf.to_owned()));
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
    }
    let srcs: Vec<gst_app::AppSrc> = (0..seeds.len())
        .map(|i| {
            let src = pipeline
                .by_name(&format!("src{i}"))
                .unwrap()
                .downcast::<gst_app::AppSrc>()
                .unwrap();
            src.set_caps(Some(&common::audio_caps_f32()));
            src
        })
        .collect();
    pipeline.set_state(gst::State::Playing).unwrap();
    for src in &srcs {
        let mut offset = 0;
        for chunk in audio.chunks(1600) {
            src.push_buffer(common::f32_buffer(chunk, offset)).unwrap();
            offset += chunk.len() as u64;
        }
        src.end_of_stream().unwrap();
    }
    let bus = pipeline.bus().unwrap();
    let end = bus.timed_pop_filtered(
        gst::ClockTime::from_seconds(WATCHDOG.as_secs()),
        &[gst::MessageType::Eos, gst::MessageType::Error],
    );
    let registry = EngineRegistry::global();
    let counts = (registry.live_engines(), registry.loads());
    pipeline.set_state(gst::State::Null).unwrap();
    match end.as_ref().map(|m| m.view()) {
        Some(gst::MessageView::Eos(_)) => {}
        Some(gst::MessageView::Error(e)) => panic!("pipeline error: {}", e.error()),
        _ => panic!(
            "{} dawnavatar elements sharing one engine hung: no EOS within 180 s",
            seeds.len()
        ),
    }
    let frames = outputs
        .iter()
        .map(|o| std::mem::take(&mut *o.lock().unwrap()))
        .collect();
    (frames, counts.0, counts.1)
}

/// The only test of this file that uses the process-wide registry (so the counts are its own).
#[test]
fn three_elements_share_one_set_of_sessions_and_give_the_frames_they_give_alone() {
    let audio = &common::speech()[..640 * 20];
    let (together, live, loads) = run_branches(&[1, 2, 3], audio);
    assert_eq!(live, 1, "three elements on one pack must share one engine");
    assert_eq!(
        loads, 1,
        "one set of sessions must be loaded for three elements"
    );
    assert_eq!(
        EngineRegistry::global().live_engines(),
        0,
        "the shared engine must be released when the last element stops"
    );
    for (i, seed) in [1u64, 2, 3].into_iter().enumerate() {
        let (alone, _, _) = run_branches(&[seed], audio);
        assert_eq!(together[i].len(), 20, "element {i}: frame count");
        assert!(
            together[i] == alone[0],
            "element {i} (seed {seed}): frames differ from the same element run alone"
        );
    }
    assert!(
        together[0] != together[1],
        "other seeds must give other frames"
    );
}
