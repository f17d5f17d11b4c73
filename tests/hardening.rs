//! What an adversarial review found besides the deadlock (issue 11): files that are not
//! regular files, unbounded manifests, portrait changes (before the first frame, out of
//! order, across a restart, while stopping), live sources into sinks that do not sync,
//! non-finite audio, properties changed while running, GAP events claiming hours, and each
//! warning posted once. Every test that runs a pipeline or a thread has a watchdog.

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use gst::prelude::*;

const MINUTE: Duration = Duration::from_secs(60);

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("gst-dawn-hardening-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn mkfifo(path: &Path) {
    let _ = std::fs::remove_file(path);
    let ok = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo (coreutils) must be installed")
        .success();
    assert!(ok, "mkfifo {} failed", path.display());
}

/// A copy of a directory's files (a pack, or the face models).
fn copy_dir(from: &Path, to: &Path) {
    for f in std::fs::read_dir(from).unwrap() {
        let f = f.unwrap();
        if f.file_type().unwrap().is_file() {
            std::fs::copy(f.path(), to.join(f.file_name())).unwrap();
        }
    }
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// Every message the pipeline posts, as it is posted.
fn collect(pipeline: &gst::Pipeline) -> Arc<Mutex<Vec<gst::Message>>> {
    let msgs = Arc::new(Mutex::new(Vec::new()));
    let m2 = msgs.clone();
    pipeline.bus().unwrap().set_sync_handler(move |_, msg| {
        m2.lock().unwrap().push(msg.clone());
        gst::BusSyncReply::Pass
    });
    msgs
}

fn warnings(msgs: &Mutex<Vec<gst::Message>>) -> Vec<String> {
    msgs.lock()
        .unwrap()
        .iter()
        .filter_map(|m| match m.view() {
            gst::MessageView::Warning(w) => Some(w.error().to_string()),
            _ => None,
        })
        .collect()
}

fn errors(msgs: &Mutex<Vec<gst::Message>>) -> Vec<String> {
    msgs.lock()
        .unwrap()
        .iter()
        .filter_map(|m| match m.view() {
            gst::MessageView::Error(e) => Some(format!(
                "{} / {}",
                e.error(),
                e.debug().map(|d| d.to_string()).unwrap_or_default()
            )),
            _ => None,
        })
        .collect()
}

/// The `dawn-portrait` messages so far, in order.
fn portraits(msgs: &Mutex<Vec<gst::Message>>) -> Vec<gst::Structure> {
    msgs.lock()
        .unwrap()
        .iter()
        .filter_map(|m| match m.view() {
            gst::MessageView::Element(e) => e
                .structure()
                .filter(|s| s.name() == "dawn-portrait")
                .map(|s| s.to_owned()),
            _ => None,
        })
        .collect()
}

/// Waits (polling) until `cond` holds; fails naming `what` after `limit`.
fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !cond() {
        assert!(t0.elapsed() < limit, "{what}: not after {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// NULL→READY of a lone `dawnavatar` with `props` must fail; returns the error text.
fn load_error(props: &[(&str, String)]) -> String {
    init();
    let pipeline = gst::Pipeline::new();
    let e = gst::ElementFactory::make("dawnavatar")
        .property(
            "execution-provider",
            gstdawn::element::ExecutionProvider::Cpu,
        )
        .build()
        .unwrap();
    for (k, v) in props {
        e.set_property_from_str(k, v);
    }
    pipeline.add(&e).unwrap();
    let res = {
        let _w = watchdog(format!("NULL→READY with {props:?}"), MINUTE);
        pipeline.set_state(gst::State::Ready)
    };
    let err = first_error(&pipeline.bus().unwrap());
    pipeline.set_state(gst::State::Null).unwrap();
    assert!(res.is_err(), "loading with {props:?} succeeded");
    err.unwrap_or_else(|| panic!("no error message for {props:?}"))
}

fn tiny64() -> String {
    s(&pack("tiny64"))
}

fn astronaut() -> String {
    s(&data("skimage_astronaut_128.png"))
}

#[test]
fn fifos_devices_and_directories_are_refused_without_blocking() {
    let dir = tmpdir("fifos");
    let fifo = dir.join("face.png");
    mkfifo(&fifo);
    let err = load_error(&[("model-path", tiny64()), ("image", s(&fifo))]);
    assert!(
        err.contains(&format!(
            "portrait image {} is a FIFO (named pipe)",
            fifo.display()
        )),
        "{err}"
    );
    assert!(err.contains("fix:"), "{err}");
    let err = load_error(&[("model-path", tiny64()), ("image", "/dev/zero".into())]);
    assert!(err.contains("/dev/zero is a character device"), "{err}");
    let err = load_error(&[("model-path", tiny64()), ("image", s(&dir))]);
    assert!(
        err.contains("is a directory") && err.contains("fix:"),
        "{err}"
    );

    // The pack's manifest as a FIFO, then as /dev/zero (never ends).
    let p = dir.join("pack");
    std::fs::create_dir_all(&p).unwrap();
    copy_dir(&pack("tiny64"), &p);
    std::fs::remove_file(p.join("manifest.json")).unwrap();
    mkfifo(&p.join("manifest.json"));
    let err = load_error(&[("model-path", s(&p)), ("image", astronaut())]);
    assert!(
        err.contains("model pack manifest") && err.contains("is a FIFO (named pipe)"),
        "{err}"
    );
    std::fs::remove_file(p.join("manifest.json")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", p.join("manifest.json")).unwrap();
    let err = load_error(&[("model-path", s(&p)), ("image", astronaut())]);
    assert!(err.contains("is a character device"), "{err}");

    // A graph of the pack as a FIFO.
    std::fs::remove_file(p.join("manifest.json")).unwrap();
    copy_dir(&pack("tiny64"), &p);
    std::fs::remove_file(p.join("denoiser.onnx")).unwrap();
    mkfifo(&p.join("denoiser.onnx"));
    let err = load_error(&[("model-path", s(&p)), ("image", astronaut())]);
    assert!(
        err.contains("denoiser: graph file") && err.contains("is a FIFO (named pipe)"),
        "{err}"
    );

    // A face-model file as a FIFO.
    let f = dir.join("face");
    std::fs::create_dir_all(&f).unwrap();
    copy_dir(&root().join("models/face"), &f);
    let json = f.join("tddfa_param_mean_std_62.json");
    std::fs::remove_file(&json).unwrap();
    mkfifo(&json);
    let err = load_error(&[
        ("model-path", tiny64()),
        ("image", astronaut()),
        ("face-models", s(&f)),
    ]);
    assert!(
        err.contains("face model file") && err.contains("is a FIFO (named pipe)"),
        "{err}"
    );
}

/// A live appsrc → dawnavatar(props) → appsink(sync=false) pipeline, in PLAYING.
fn live_pipeline(props: &str) -> (gst::Pipeline, gst_app::AppSrc, gst::Element) {
    let (pipeline, src) = appsrc_pipeline(&format!(
        "appsrc name=src is-live=true format=time ! dawnavatar name=d model-path={} \
         execution-provider=cpu chunk-frames=4 sampling-steps=2 {props} ! \
         appsink name=sink sync=false",
        tiny64()
    ));
    let avatar = pipeline.by_name("d").unwrap();
    (pipeline, src, avatar)
}

#[test]
fn a_portrait_change_to_a_fifo_is_refused_while_running() {
    let dir = tmpdir("fifo-change");
    let fifo = dir.join("next.png");
    mkfifo(&fifo);
    let _w = watchdog("a portrait change to a FIFO", MINUTE);
    let (pipeline, _src, avatar) = live_pipeline(&format!("image={}", astronaut()));
    let msgs = collect(&pipeline);
    pipeline.set_state(gst::State::Playing).unwrap();
    avatar.set_property("image", s(&fifo));
    wait_for("the warning about the FIFO", MINUTE, || {
        warnings(&msgs)
            .iter()
            .any(|w| w.contains("next.png") && w.contains("is a FIFO (named pipe)"))
    });
    pipeline.set_state(gst::State::Null).unwrap();
    assert!(errors(&msgs).is_empty(), "{:?}", errors(&msgs));
}

#[test]
fn manifest_values_are_bounded_and_graph_names_stay_in_the_pack() {
    use gstdawn::engine::ModelPack;
    let base: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(pack("tiny64").join("manifest.json")).unwrap(),
    )
    .unwrap();
    let dir = tmpdir("bounds");
    copy_dir(&pack("tiny64"), &dir);
    let open_with = |edit: &dyn Fn(&mut serde_json::Value)| -> String {
        let mut m = base.clone();
        edit(&mut m);
        std::fs::write(dir.join("manifest.json"), m.to_string()).unwrap();
        match ModelPack::open(&dir) {
            Ok(_) => "opened".into(),
            Err(e) => format!("{e:#}"),
        }
    };
    assert_eq!(open_with(&|_| {}), "opened");
    let err = open_with(&|m| m["diffusion"]["train_timesteps"] = 3_000_000_000u64.into());
    assert!(
        err.contains("diffusion.train_timesteps is 3000000000, expected 2..=100000"),
        "{err}"
    );
    let err = open_with(&|m| m["pbnet"]["noise_dim"] = 3_000_000_000u64.into());
    assert!(
        err.contains("pbnet.noise_dim is 3000000000, expected 1..=4096"),
        "{err}"
    );
    let err = open_with(&|m| {
        m["diffusion"]["train_timesteps"] = 10_000.into();
        m["diffusion"]["sampling_steps"] = 5000.into();
        m["diffusion"]["eta"] = 5.0.into();
        m["diffusion"]["attention_window"] = 4_000_000_000u64.into();
    });
    for want in [
        "diffusion.sampling_steps is 5000, expected 1..=999",
        "diffusion.eta is 5, expected in [0, 1]",
        "diffusion.attention_window is 4000000000",
    ] {
        assert!(err.contains(want), "{want}: {err}");
    }
    let outside = s(&pack("tiny128").join("denoiser.onnx"));
    let err = open_with(&|m| {
        m["graphs"]["denoiser"] = "../tiny128/denoiser.onnx".into();
        m["graphs"]["decoder"] = outside.clone().into();
        m["graphs"]["pbnet_pose"] = "..".into();
    });
    for role in ["denoiser", "decoder", "pbnet_pose"] {
        assert!(
            err.contains(&format!("graphs.{role} is"))
                && err.contains("expected a plain file name in the pack directory"),
            "{role}: {err}"
        );
    }
    // A file given as the pack directory says so (and which directory to give).
    let err = format!(
        "{:#}",
        ModelPack::open(&dir.join("manifest.json")).unwrap_err()
    );
    assert!(
        err.contains("is a file, not a model pack directory")
            && err.contains(&format!(
                "set model-path to the directory holding it, {}",
                dir.display()
            )),
        "{err}"
    );
}

/// Frames as (caps, buffer), and the bus messages seen.
type Frames = Vec<(gst::Caps, gst::Buffer)>;
type Messages = Arc<Mutex<Vec<gst::Message>>>;

/// Runs `seconds` of speech through appsrc → dawnavatar(props) → appsink (non-live), calling
/// `before_audio` once the pipeline plays; returns the frames (caps, buffer) and messages.
fn run_offline(
    props: &str,
    seconds: f64,
    before_audio: impl FnOnce(&gst::Element, &Mutex<Vec<gst::Message>>),
) -> (Frames, Messages) {
    let (pipeline, src) = appsrc_pipeline(&format!(
        "appsrc name=src format=time ! dawnavatar name=d execution-provider=cpu \
         chunk-frames=8 sampling-steps=2 {props} ! appsink name=sink sync=false"
    ));
    let sink = pipeline
        .by_name("sink")
        .unwrap()
        .downcast::<gst_app::AppSink>()
        .unwrap();
    let msgs = collect(&pipeline);
    pipeline.set_state(gst::State::Playing).unwrap();
    before_audio(&pipeline.by_name("d").unwrap(), &msgs);
    let n = (seconds * 16_000.0) as usize;
    src.push_buffer(f32_buffer(&speech()[..n], 0)).unwrap();
    src.end_of_stream().unwrap();
    let mut frames = Vec::new();
    while !sink.is_eos() && errors(&msgs).is_empty() {
        if let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_mseconds(100)) {
            frames.push((
                sample.caps().unwrap().to_owned(),
                sample.buffer().unwrap().to_owned(),
            ));
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
    (frames, msgs)
}

#[test]
fn output_portrait_keeps_its_size_when_the_portrait_changes_before_the_first_frame() {
    let _w = watchdog(
        "output=portrait with a portrait change before the first frame",
        3 * MINUTE,
    );
    let hopper = s(&data("mpl_grace_hopper.jpg"));
    let (frames, msgs) = run_offline(
        &format!(
            "model-path={} image={} output=portrait",
            tiny64(),
            s(&data("skimage_astronaut.png"))
        ),
        1.0,
        |avatar, msgs| {
            // 512×512 at load; the new portrait is 512×600.
            avatar.set_property("image", &hopper);
            wait_for("the new portrait's dawn-portrait message", MINUTE, || {
                portraits(msgs)
                    .iter()
                    .any(|p| p.get::<String>("image").unwrap() == hopper)
            });
        },
    );
    assert!(errors(&msgs).is_empty(), "{:?}", errors(&msgs));
    assert_eq!(frames.len(), 25, "1 s of audio");
    for (caps, _) in &frames {
        let info = gst_video::VideoInfo::from_caps(caps).unwrap();
        assert_eq!((info.width(), info.height()), (512, 512), "{caps}");
    }
}

/// Frames out of a live audiotestsrc of `buffers` × 640 samples into `sink`, and the
/// element's frames-repeated count.
fn live_into(sink: &str, buffers: u32) -> (u64, u64) {
    init();
    let pipeline = gst::parse::launch(&format!(
        "audiotestsrc is-live=true num-buffers={buffers} samplesperbuffer=640 wave=pink-noise ! \
         audio/x-raw,rate=16000,channels=1,format=F32LE ! dawnavatar name=d model-path={} \
         image={} execution-provider=cpu chunk-frames=8 sampling-steps=2 ! {sink}",
        tiny64(),
        astronaut()
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let count = Arc::new(Mutex::new(0u64));
    let c2 = count.clone();
    let out = pipeline.by_name("out").unwrap();
    if let Ok(appsink) = out.clone().downcast::<gst_app::AppSink>() {
        appsink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |s| {
                    s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    *c2.lock().unwrap() += 1;
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
    } else {
        out.connect("handoff", false, move |_| {
            *c2.lock().unwrap() += 1;
            None
        });
    }
    let res = run_pipeline(&pipeline, MINUTE);
    let repeated = pipeline
        .by_name("d")
        .unwrap()
        .property::<u64>("frames-repeated");
    assert_eq!(res, Ok(()), "{sink}");
    let n = *count.lock().unwrap();
    (n, repeated)
}

#[test]
fn a_live_source_into_a_sink_that_does_not_sync_gives_exactly_the_audio_frames() {
    let _w = watchdog("a live source into sinks that do not sync", 3 * MINUTE);
    for sink in [
        "fakesink name=out sync=false signal-handoffs=true",
        "appsink name=out sync=false",
    ] {
        let (frames, repeated) = live_into(sink, 60);
        assert_eq!(frames, 60, "{sink}: 60 × 640 samples give 60 frames");
        assert_eq!(
            repeated, 0,
            "{sink}: nothing has a deadline, nothing is repeated"
        );
    }
}

/// Mean brightness of an RGB frame.
fn mean(b: &gst::Buffer) -> f64 {
    let m = b.map_readable().unwrap();
    m.iter().map(|&v| v as f64).sum::<f64>() / m.len() as f64
}

#[test]
fn non_finite_audio_is_played_as_silence_with_one_warning() {
    let _w = watchdog("non-finite audio", 3 * MINUTE);
    let e = avatar(
        "tiny64",
        &[
            ("chunk-frames", 8u32.to_value()),
            ("sampling-steps", 2u32.to_value()),
        ],
    );
    let mut h = gst_check::Harness::with_element(&e, Some("sink"), Some("src"));
    h.set_live(false);
    h.set_src_caps(audio_caps_f32());
    h.play();
    let bus = gst::Bus::new();
    e.set_bus(Some(&bus));
    let speech = speech();
    let mut audio = speech[..48_000].to_vec();
    audio[16_100] = f32::NAN;
    audio[16_200] = f32::INFINITY;
    audio[32_000] = f32::NEG_INFINITY;
    for (i, c) in audio.chunks(1600).enumerate() {
        h.push(f32_buffer(c, i as u64 * 1600)).unwrap();
    }
    h.push_event(gst::event::Eos::new());
    let frames = pull_until_eos(&mut h);
    assert_eq!(frames.len(), 75);
    let first = mean(&frames[0]);
    for (k, f) in frames.iter().enumerate() {
        let m = mean(f);
        assert!(
            m > first * 0.5,
            "frame {k} is dark (mean {m:.1}, first {first:.1})"
        );
    }
    let texts: Vec<String> = std::iter::from_fn(|| bus.pop())
        .filter_map(|m| match m.view() {
            gst::MessageView::Warning(w) => Some(w.error().to_string()),
            _ => None,
        })
        .filter(|t| t.contains("NaN or infinite"))
        .collect();
    assert_eq!(texts.len(), 1, "one warning per stream: {texts:?}");
}

/// A large JPEG (slow to analyse) made from the test portrait.
fn large_portrait(dir: &Path) -> PathBuf {
    let path = dir.join("large.jpg");
    let img = image::open(data("mpl_grace_hopper.jpg")).unwrap();
    img.resize_exact(6000, 7000, image::imageops::FilterType::Nearest)
        .to_rgb8()
        .save(&path)
        .unwrap();
    path
}

#[test]
fn the_newest_portrait_wins_and_none_reaches_a_restarted_stream() {
    let _w = watchdog(
        "portrait changes out of order and across a restart",
        5 * MINUTE,
    );
    let dir = tmpdir("order");
    let large = large_portrait(&dir);
    let hopper = s(&data("mpl_grace_hopper.jpg"));
    let (pipeline, _src, avatar) = live_pipeline(&format!("image={}", astronaut()));
    let msgs = collect(&pipeline);
    pipeline.set_state(gst::State::Playing).unwrap();
    // The large one finishes last, though it was asked for first.
    avatar.set_property("image", s(&large));
    avatar.set_property("image", &hopper);
    wait_for("the newest portrait's message", MINUTE, || {
        portraits(&msgs)
            .iter()
            .any(|p| p.get::<String>("image").unwrap() == hopper)
    });
    // Give the older analysis time to finish: its result must be dropped.
    std::thread::sleep(Duration::from_secs(4));
    let last = portraits(&msgs)
        .last()
        .unwrap()
        .get::<String>("image")
        .unwrap();
    assert_eq!(last, hopper, "the newest request wins");

    // A change in flight while the element goes to NULL and comes back with another pack.
    avatar.set_property("image", s(&large));
    pipeline.set_state(gst::State::Null).unwrap();
    avatar.set_property("model-path", s(&pack("tiny128")));
    avatar.set_property("image", astronaut());
    msgs.lock().unwrap().clear();
    pipeline.set_state(gst::State::Playing).unwrap();
    let sink = pipeline
        .by_name("sink")
        .unwrap()
        .downcast::<gst_app::AppSink>()
        .unwrap();
    let src = pipeline
        .by_name("src")
        .unwrap()
        .downcast::<gst_app::AppSrc>()
        .unwrap();
    src.push_buffer(f32_buffer(&speech()[..32_000], 0)).unwrap();
    src.end_of_stream().unwrap();
    let mut last_caps = None;
    while !sink.is_eos() && errors(&msgs).is_empty() {
        if let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_mseconds(100)) {
            last_caps = sample.caps().map(|c| c.to_owned());
        }
    }
    // The stale analysis (for tiny64) had time to finish during the stream.
    std::thread::sleep(Duration::from_secs(2));
    pipeline.set_state(gst::State::Null).unwrap();
    assert!(errors(&msgs).is_empty(), "{:?}", errors(&msgs));
    let info = gst_video::VideoInfo::from_caps(&last_caps.unwrap()).unwrap();
    assert_eq!(info.width(), 128, "frames of the new pack");
    let images: Vec<String> = portraits(&msgs)
        .iter()
        .map(|p| p.get::<String>("image").unwrap())
        .collect();
    assert_eq!(images, vec![astronaut()], "only the new load's portrait");
}

fn array(values: &[f32]) -> gst::Array {
    gst::Array::new(values.iter().map(|v| v.to_send_value()))
}

#[test]
fn properties_fixed_at_start_are_refused_while_running() {
    let _w = watchdog("properties changed while running", 2 * MINUTE);
    let (pipeline, _src, avatar) = live_pipeline(&format!("image={}", astronaut()));
    let msgs = collect(&pipeline);
    pipeline.set_state(gst::State::Playing).unwrap();
    avatar.set_property("chunk-frames", 16u32);
    avatar.set_property("lookahead-frames", 3i32);
    avatar.set_property("sampling-steps", 9u32);
    avatar.set_property("model-path", s(&pack("tiny128")));
    assert_eq!(avatar.property::<u32>("chunk-frames"), 4, "kept");
    assert_eq!(avatar.property::<i32>("lookahead-frames"), -1, "kept");
    assert_eq!(avatar.property::<u32>("sampling-steps"), 2, "kept");
    assert_eq!(
        avatar.property::<Option<String>>("model-path").unwrap(),
        tiny64()
    );
    let w = warnings(&msgs);
    for name in [
        "chunk-frames",
        "lookahead-frames",
        "sampling-steps",
        "model-path",
    ] {
        let text = format!("property {name} can only be changed in the NULL or READY state");
        assert_eq!(
            w.iter().filter(|t| t.contains(&text)).count(),
            1,
            "{name}: {w:?}"
        );
    }
    pipeline.set_state(gst::State::Null).unwrap();
    // Back in NULL the same change is taken.
    avatar.set_property("chunk-frames", 16u32);
    assert_eq!(avatar.property::<u32>("chunk-frames"), 16);
}

#[test]
fn analysis_properties_rerun_the_analysis_while_running() {
    let _w = watchdog("analysis properties changed while running", 3 * MINUTE);
    let (pipeline, _src, avatar) =
        live_pipeline(&format!("image={}", s(&data("mpl_grace_hopper.jpg"))));
    let msgs = collect(&pipeline);
    pipeline.set_state(gst::State::Playing).unwrap();
    let reports = || portraits(&msgs).len();
    wait_for("the first dawn-portrait message", MINUTE, || reports() == 1);
    let mut expect = 1;
    let mut next = |what: &str| -> gst::Structure {
        expect += 1;
        wait_for(
            &format!("a dawn-portrait message after {what}"),
            MINUTE,
            || reports() >= expect,
        );
        portraits(&msgs).last().unwrap().clone()
    };
    avatar.set_property("init-pose", array(&[12.0, 3.0, -4.0, 4.79e-4, 56.5, 64.9]));
    let r = next("init-pose");
    assert_eq!(r.get::<String>("pose-source").unwrap(), "override", "{r}");
    assert!((r.get::<f64>("yaw").unwrap() - 12.0).abs() < 1e-4, "{r}");
    avatar.set_property("init-eyes", array(&[0.11, 0.22]));
    let r = next("init-eyes");
    assert!(
        (r.get::<f64>("eye-left").unwrap() - 0.11).abs() < 1e-4,
        "{r}"
    );
    avatar.set_property("detect-face", false);
    let r = next("detect-face");
    assert!(r.get::<bool>("detected").is_ok(), "{r}");
    avatar.set_property("face-index", 0i32);
    next("face-index");
    avatar.set_property("strict", true);
    next("strict");
    // A wrong count is refused with a warning, and the value is kept.
    avatar.set_property("init-pose", array(&[1.0, 2.0, 3.0, 4.0, 5.0]));
    let w = warnings(&msgs);
    assert!(
        w.iter()
            .any(|t| t.contains("property init-pose") && t.contains("expected 6 numbers, got 5")),
        "{w:?}"
    );
    assert_eq!(avatar.property::<gst::Array>("init-pose").len(), 6);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(reports(), expect, "no analysis for a refused value");
    pipeline.set_state(gst::State::Null).unwrap();
    assert!(errors(&msgs).is_empty(), "{:?}", errors(&msgs));
}

/// Frames from 1 s of speech then a GAP event claiming 100 hours, in a harness (`live` or
/// not), with the segment's stop at `stop` and the test clock at `now`.
fn gap_frames(live: bool, stop: Option<gst::ClockTime>, now: gst::ClockTime) -> usize {
    let e = avatar(
        "tiny64",
        &[
            ("chunk-frames", 8u32.to_value()),
            ("sampling-steps", 2u32.to_value()),
        ],
    );
    let mut h = gst_check::Harness::with_element(&e, Some("sink"), Some("src"));
    h.set_live(live);
    h.use_testclock();
    h.set_src_caps(audio_caps_f32());
    if let Some(stop) = stop {
        let mut seg = gst::FormattedSegment::<gst::ClockTime>::new();
        seg.set_stop(stop);
        assert!(h.push_event(gst::event::Segment::new(&seg)));
    }
    h.play();
    h.testclock().unwrap().set_time(now);
    h.push(f32_buffer(&speech()[..16_000], 0)).unwrap();
    let gap = gst::event::Gap::builder(gst::ClockTime::from_seconds(1))
        .duration(gst::ClockTime::from_seconds(100 * 3600))
        .build();
    assert!(h.push_event(gap));
    h.push_event(gst::event::Eos::new());
    pull_until_eos(&mut h).len()
}

#[test]
fn a_gap_claiming_100_hours_is_bounded() {
    let _w = watchdog("GAP events claiming 100 hours", 3 * MINUTE);
    let t = gst::ClockTime::from_seconds;
    // Offline: bounded by the segment's stop; with no stop, only later audio fills a GAP.
    assert_eq!(gap_frames(false, Some(t(2)), t(0)), 50);
    assert_eq!(gap_frames(false, None, t(0)), 25);
    // Live: bounded by the present (the clock at 3 s: silence up to there).
    assert_eq!(gap_frames(true, None, t(3)), 75);
}

#[test]
fn stopping_while_a_portrait_loads_does_not_wait_for_it() {
    let dir = tmpdir("stop-loading");
    let large = large_portrait(&dir);
    // How long an analysis of the large portrait takes here.
    let t0 = Instant::now();
    gstdawn::portrait::decode::decode_file(&large).unwrap();
    let decode = t0.elapsed();
    let _w = watchdog("NULL while a portrait loads", 2 * MINUTE);
    let (pipeline, _src, avatar) = live_pipeline(&format!("image={}", astronaut()));
    pipeline.set_state(gst::State::Playing).unwrap();
    avatar.set_property("image", s(&large));
    let t0 = Instant::now();
    pipeline.set_state(gst::State::Null).unwrap();
    let stop = t0.elapsed();
    println!("decoding the large portrait alone: {decode:?}; NULL while it loads: {stop:?}");
    assert!(
        stop < decode / 2,
        "NULL took {stop:?}, the analysis alone {decode:?}: it waited for the analysis"
    );
}

#[test]
fn each_warning_is_posted_once() {
    let _w = watchdog("a run with a portrait without a face", 3 * MINUTE);
    let dir = tmpdir("once");
    let img = dir.join("gradient.png");
    image::RgbImage::from_fn(320, 240, |x, y| {
        image::Rgb([(x / 2) as u8, (y / 2) as u8, 128])
    })
    .save(&img)
    .unwrap();
    // The default provider (auto): on a machine without a GPU it warns about the fallback.
    let (frames, msgs) = run_offline(
        &format!(
            "model-path={} image={} execution-provider=auto",
            tiny64(),
            s(&img)
        ),
        1.0,
        |_, _| {},
    );
    assert_eq!(frames.len(), 25);
    let w = warnings(&msgs);
    let no_face = w.iter().filter(|t| t.contains("no face found")).count();
    assert_eq!(no_face, 1, "{w:?}");
    for t in &w {
        assert_eq!(w.iter().filter(|u| *u == t).count(), 1, "posted twice: {t}");
    }
}
