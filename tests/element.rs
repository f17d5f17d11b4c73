//! `dawnavatar` streaming behaviour with the tiny test pack and real speech: frame counts and
//! timestamps, caps, determinism, buffer-size invariance, EOS drain, flushing, gaps.

mod common;

use common::*;
use gst::prelude::*;

/// Small chunks so several chunks, context and look-ahead are exercised on short audio.
fn small_chunks() -> Vec<(&'static str, glib::Value)> {
    vec![
        ("chunk-frames", 8u32.to_value()),
        ("context-frames", 4i32.to_value()),
        ("lookahead-frames", 3i32.to_value()),
        ("sampling-steps", 5u32.to_value()),
    ]
}

fn frame_time(k: u64) -> gst::ClockTime {
    gst::ClockTime::from_mseconds(40 * k)
}

#[test]
fn frame_count_and_timestamps_follow_the_audio() {
    let speech = speech();
    // Multiples of 640 and not, one shorter than a frame.
    for n in [640 * 20, 640 * 20 + 639, 640 * 9 + 1, 16_000 * 2 + 17, 300] {
        let e = avatar("tiny64", &small_chunks());
        let frames = run_harness(&e, &speech[..n], 1600);
        assert_eq!(
            frames.len(),
            n / 640,
            "{n} samples must give floor(n/640) frames"
        );
        for (k, b) in frames.iter().enumerate() {
            assert_eq!(
                b.pts(),
                Some(frame_time(k as u64)),
                "pts of frame {k} ({n} samples)"
            );
            assert_eq!(b.duration(), Some(frame_time(1)));
            assert_eq!(b.offset(), k as u64);
        }
    }
}

#[test]
fn timestamps_start_at_the_first_audio_timestamp() {
    let speech = &speech()[..640 * 12];
    let e = avatar("tiny64", &small_chunks());
    let mut h = gst_check::Harness::with_element(&e, Some("sink"), Some("src"));
    h.set_live(false);
    h.set_src_caps(audio_caps_f32());
    h.play();
    // Audio that starts at 5 s into the segment.
    let start = 5 * 16_000u64;
    for (i, c) in speech.chunks(800).enumerate() {
        h.push(f32_buffer(c, start + i as u64 * 800)).unwrap();
    }
    h.push_event(gst::event::Eos::new());
    let frames = pull_until_eos(&mut h);
    assert_eq!(frames.len(), 12);
    assert_eq!(frames[0].pts(), Some(gst::ClockTime::from_seconds(5)));
    assert_eq!(
        frames[11].pts(),
        Some(gst::ClockTime::from_seconds(5) + frame_time(11))
    );
    // A TIME segment precedes the first frame.
    let mut h2 = gst_check::Harness::with_element(
        &avatar("tiny64", &small_chunks()),
        Some("sink"),
        Some("src"),
    );
    h2.set_live(false);
    h2.set_src_caps(audio_caps_f32());
    h2.play();
    h2.push(f32_buffer(&speech[..640 * 2], 0)).unwrap();
    h2.push_event(gst::event::Eos::new());
    let _ = pull_until_eos(&mut h2);
    let mut saw_segment = false;
    while let Some(ev) = h2.try_pull_event() {
        if let gst::EventView::Segment(s) = ev.view() {
            assert_eq!(s.segment().format(), gst::Format::Time);
            saw_segment = true;
        }
    }
    assert!(
        saw_segment
            || h2
                .sinkpad()
                .unwrap()
                .sticky_event::<gst::event::Segment>(0)
                .is_some()
    );
}

#[test]
fn output_does_not_depend_on_buffer_sizes() {
    let speech = &speech()[..640 * 30 + 100];
    let props = small_chunks();
    let a = run_harness(&avatar("tiny64", &props), speech, 160); // 10 ms buffers
    let b = run_harness(&avatar("tiny64", &props), speech, 16_000); // 1 s buffers
    let c = run_harness(&avatar("tiny64", &props), speech, 999); // odd sizes
    assert_eq!(a.len(), 30);
    assert_eq!(a.len(), b.len());
    for (i, ((x, y), z)) in a.iter().zip(&b).zip(&c).enumerate() {
        assert_eq!(
            bytes(x),
            bytes(y),
            "frame {i} differs between 10 ms and 1 s buffers"
        );
        assert_eq!(
            bytes(x),
            bytes(z),
            "frame {i} differs with 999-sample buffers"
        );
    }
}

#[test]
fn same_seed_same_frames_other_seed_other_frames() {
    let speech = &speech()[..640 * 16];
    let mut p = small_chunks();
    p.push(("seed", 7u64.to_value()));
    let a = run_harness(&avatar("tiny64", &p), speech, 1600);
    let b = run_harness(&avatar("tiny64", &p), speech, 1600);
    *p.last_mut().unwrap() = ("seed", 8u64.to_value());
    let c = run_harness(&avatar("tiny64", &p), speech, 1600);
    assert_eq!(a.len(), 16);
    assert!(
        a.iter().zip(&b).all(|(x, y)| bytes(x) == bytes(y)),
        "same seed must give identical frames"
    );
    assert!(
        a.iter().zip(&c).any(|(x, y)| bytes(x) != bytes(y)),
        "another seed must change the frames"
    );
}

#[test]
fn frames_move_with_speech_and_look_like_the_portrait() {
    let speech = &speech()[..16_000 * 2];
    let frames = run_harness(&avatar("tiny64", &small_chunks()), speech, 1600);
    assert_eq!(frames.len(), 50);
    // Consecutive frames differ (the avatar moves) but stay close (no flicker or noise).
    let mut moved = 0;
    for w in frames.windows(2) {
        let (a, b) = (bytes(&w[0]), bytes(&w[1]));
        let mad: f64 = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (*x as f64 - *y as f64).abs())
            .sum::<f64>()
            / a.len() as f64;
        assert!(mad < 20.0, "consecutive frames differ by {mad} on average");
        if mad > 0.05 {
            moved += 1;
        }
    }
    assert!(moved > 25, "only {moved} of 49 frame pairs show motion");
}

#[test]
fn negotiates_every_advertised_format() {
    let speech = &speech()[..640 * 3];
    for format in [
        "RGB", "RGBA", "BGRx", "BGRA", "xRGB", "BGR", "I420", "NV12", "YUY2",
    ] {
        let e = avatar("tiny64", &small_chunks());
        let mut h = gst_check::Harness::with_element(&e, Some("sink"), Some("src"));
        h.set_live(false);
        h.set_src_caps(audio_caps_f32());
        h.set_sink_caps_str(&format!("video/x-raw,format={format}"));
        h.play();
        h.push(f32_buffer(speech, 0)).unwrap();
        h.push_event(gst::event::Eos::new());
        let frames = pull_until_eos(&mut h);
        assert_eq!(frames.len(), 3, "{format}");
        let caps = h
            .sinkpad()
            .unwrap()
            .current_caps()
            .expect("caps negotiated");
        let info = gst_video::VideoInfo::from_caps(&caps).unwrap();
        assert_eq!(info.format().to_str(), format);
        assert_eq!((info.width(), info.height()), (64, 64));
        assert_eq!(info.fps(), gst::Fraction::new(25, 1));
        assert_eq!(frames[0].size(), info.size(), "{format} buffer size");
    }
}

#[test]
fn s16_input_gives_the_same_frames_as_f32() {
    let speech = &speech()[..640 * 8];
    let f32_frames = run_harness(&avatar("tiny64", &small_chunks()), speech, 1600);
    let e = avatar("tiny64", &small_chunks());
    let mut h = gst_check::Harness::with_element(&e, Some("sink"), Some("src"));
    h.set_live(false);
    h.set_src_caps(audio_caps_s16());
    h.play();
    // The speech came from 16-bit PCM, so it converts back exactly.
    let pcm: Vec<u8> = speech
        .iter()
        .flat_map(|s| ((s * 32768.0).round() as i16).to_le_bytes())
        .collect();
    let mut buf = gst::Buffer::from_mut_slice(pcm);
    buf.get_mut().unwrap().set_pts(gst::ClockTime::ZERO);
    h.push(buf).unwrap();
    h.push_event(gst::event::Eos::new());
    let s16_frames = pull_until_eos(&mut h);
    assert_eq!(s16_frames.len(), 8);
    for (a, b) in f32_frames.iter().zip(&s16_frames) {
        assert_eq!(bytes(a), bytes(b));
    }
}

#[test]
fn flush_mid_chunk_restarts_cleanly() {
    let speech = speech();
    let e = avatar("tiny64", &small_chunks());
    let mut h = gst_check::Harness::with_element(&e, Some("sink"), Some("src"));
    h.set_live(false);
    h.set_src_caps(audio_caps_f32());
    h.play();
    // Half a chunk, then a flush while audio is buffered and maybe a chunk is running.
    h.push(f32_buffer(&speech[..640 * 20 + 320], 0)).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(30));
    assert!(h.push_event(gst::event::FlushStart::new()));
    assert!(h.push_event(gst::event::FlushStop::new(true)));
    while h.try_pull().is_some() {}
    // A new segment and new audio after the flush.
    let seg = gst::FormattedSegment::<gst::ClockTime>::new();
    assert!(h.push_event(gst::event::Segment::new(&seg)));
    for (i, c) in speech[..640 * 10].chunks(640).enumerate() {
        h.push(f32_buffer(c, i as u64 * 640)).unwrap();
    }
    h.push_event(gst::event::Eos::new());
    let frames = pull_until_eos(&mut h);
    assert_eq!(frames.len(), 10, "after a flush only the new audio counts");
    assert_eq!(frames[0].pts(), Some(gst::ClockTime::ZERO));
    assert_eq!(frames[9].pts(), Some(frame_time(9)));
}

#[test]
fn gaps_are_filled_so_frames_follow_the_clock() {
    let speech = speech();
    let e = avatar("tiny64", &small_chunks());
    let mut h = gst_check::Harness::with_element(&e, Some("sink"), Some("src"));
    h.set_live(false);
    h.set_src_caps(audio_caps_f32());
    h.play();
    // 1 s of speech, a 1 s GAP event, a discontinuity of 0.5 s, then 1 s of speech.
    h.push(f32_buffer(&speech[..16_000], 0)).unwrap();
    assert!(
        h.push_event(
            gst::event::Gap::builder(gst::ClockTime::from_seconds(1))
                .duration(gst::ClockTime::from_seconds(1))
                .build()
        )
    );
    h.push(f32_buffer(&speech[16_000..32_000], 40_000)).unwrap();
    h.push_event(gst::event::Eos::new());
    let frames = pull_until_eos(&mut h);
    assert_eq!(
        frames.len(),
        87,
        "3.5 s of timeline (gaps filled with silence) → 87 frames"
    );
    for (k, b) in frames.iter().enumerate() {
        assert_eq!(b.pts(), Some(frame_time(k as u64)));
    }
}

#[test]
fn every_property_is_documented_and_round_trips() {
    init();
    let e = gst::ElementFactory::make("dawnavatar").build().unwrap();
    let specs = e.list_properties();
    assert!(specs.len() >= 25);
    for p in specs.iter() {
        if p.owner_type() != e.type_() {
            continue;
        }
        assert!(
            p.name()
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
            "{} is not kebab-case",
            p.name()
        );
        assert!(
            !p.nick().is_empty() && p.blurb().is_some_and(|b| b.len() > 20),
            "{} needs a nick and a blurb",
            p.name()
        );
        // Writable properties accept their own default back.
        if p.flags().contains(glib::ParamFlags::WRITABLE) {
            e.set_property_from_value(p.name(), &p.default_value().clone());
            assert_eq!(
                e.property_value(p.name()).serialize().ok(),
                p.default_value().serialize().ok(),
                "{}",
                p.name()
            );
        }
    }
    // Units are stated where a property has them.
    let blurb = |n: &str| e.find_property(n).unwrap().blurb().unwrap().to_string();
    assert!(blurb("latency").contains("milliseconds"));
    assert!(blurb("chunk-frames").contains("40 ms"));
    // Pose and eye overrides are arrays, as gst-launch-1.0 writes them.
    e.set_property_from_str("init-pose", "<1.0, 2.0, 3.0, 0.0005, 60.0, 70.0>");
    let pose: Vec<f32> = e
        .property::<gst::Array>("init-pose")
        .iter()
        .map(|v| v.get::<f32>().unwrap())
        .collect();
    assert_eq!(pose, [1.0, 2.0, 3.0, 0.0005, 60.0, 70.0]);
    e.set_property_from_str("execution-provider", "tensorrt");
    assert_eq!(
        e.property::<gstdawn::element::ExecutionProvider>("execution-provider"),
        gstdawn::element::ExecutionProvider::TensorRt
    );
}

/// Offline, a file that fits in one denoiser call is rendered in one pass (the reference's
/// amount of work) when upstream knows its length; without a length the element cannot know,
/// takes its largest chunk (170 new frames) and needs a second one for the rest.
#[test]
fn offline_file_of_known_length_is_rendered_in_one_pass() {
    init();
    let frames = 187u64;
    let audio = speech();
    let audio = &audio[..frames as usize * 640];
    for (length_known, expected_chunks) in [(true, 1u64), (false, 2)] {
        let desc = format!(
            "appsrc name=src format=time ! dawnavatar name=avatar model-path={} image={} \
             execution-provider=cpu sampling-steps=2 ! fakesink",
            pack("tiny64").display(),
            data("skimage_astronaut_128.png").display()
        );
        let (pipeline, src) = appsrc_pipeline(&desc);
        if length_known {
            src.set_duration(frame_time(frames));
        }
        let mut offset = 0u64;
        for chunk in audio.chunks(1600) {
            src.push_buffer(f32_buffer(chunk, offset)).unwrap();
            offset += chunk.len() as u64;
        }
        src.end_of_stream().unwrap();
        pipeline.set_state(gst::State::Playing).unwrap();
        let bus = pipeline.bus().unwrap();
        let msg = bus
            .timed_pop_filtered(
                gst::ClockTime::from_seconds(120),
                &[gst::MessageType::Eos, gst::MessageType::Error],
            )
            .expect("no EOS within 120 s");
        assert_eq!(msg.type_(), gst::MessageType::Eos, "{msg:?}");
        let stats = pipeline
            .by_name("avatar")
            .unwrap()
            .property::<gst::Structure>("stats");
        pipeline.set_state(gst::State::Null).unwrap();
        assert_eq!(stats.get::<u64>("frames-generated").unwrap(), frames);
        assert_eq!(
            stats.get::<u64>("chunks").unwrap(),
            expected_chunks,
            "length known: {length_known}; {stats}"
        );
    }
}
