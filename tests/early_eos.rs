//! A stream that ends before its announced duration: the frames follow the audio actually
//! received (floor(N / 640) on the 40 ms grid from the segment start), whatever the duration
//! query said, the buffer sizes and where EOS falls; a seek with a stop gives exactly the
//! frames of the segment, identical to the same audio as a file of its own.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use gst::prelude::*;

/// 30 s of real speech (the 10.8 s recording repeated), mono 16 kHz.
fn speech_30s() -> Vec<f32> {
    let s = speech();
    s.iter().cycle().take(30 * 16_000).copied().collect()
}

fn write_wav(path: &Path, samples: &[f32], claimed_samples: Option<u32>) {
    let data: Vec<u8> = samples
        .iter()
        .flat_map(|v| ((v.clamp(-1.0, 1.0) * 32767.0).round() as i16).to_le_bytes())
        .collect();
    let claimed = claimed_samples.map_or(data.len() as u32, |n| 2 * n);
    let mut out = Vec::new();
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + claimed).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&16_000u32.to_le_bytes());
    out.extend_from_slice(&32_000u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&claimed.to_le_bytes());
    out.extend_from_slice(&data);
    std::fs::write(path, out).unwrap();
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gst-dawn-early-eos-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

const PROPS: &str = "execution-provider=cpu sampling-steps=2";

fn element_desc() -> String {
    format!(
        "dawnavatar model-path={} image={} {PROPS}",
        pack("tiny64").display(),
        data("skimage_astronaut_128.png").display()
    )
}

/// Runs a pipeline to EOS under a watchdog and returns the frames an appsink `sink` got.
fn frames_of(pipeline: &gst::Pipeline, what: &str) -> Vec<gst::Sample> {
    let _wd = watchdog(what, Duration::from_secs(180));
    let sink = pipeline
        .by_name("sink")
        .unwrap()
        .downcast::<gst_app::AppSink>()
        .unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let mut out = Vec::new();
    while let Ok(s) = sink.pull_sample() {
        out.push(s);
    }
    let err = first_error(&pipeline.bus().unwrap());
    pipeline.set_state(gst::State::Null).unwrap();
    assert!(err.is_none(), "{what}: {err:?}");
    out
}

fn pts(samples: &[gst::Sample]) -> Vec<gst::ClockTime> {
    samples
        .iter()
        .map(|s| s.buffer().unwrap().pts().unwrap())
        .collect()
}

fn bytes_of(samples: &[gst::Sample]) -> Vec<Vec<u8>> {
    samples
        .iter()
        .map(|s| s.buffer().unwrap().map_readable().unwrap().to_vec())
        .collect()
}

/// EOS at 1, 8 and 29 s into a stream whose duration query says 30 s, with buffers of 10 ms,
/// 1 s and 8 s.
#[test]
fn eos_before_the_announced_duration_gives_the_frames_of_the_audio_received() {
    init();
    let audio = speech_30s();
    for eos_at in [1usize, 8, 29] {
        for buffer_ms in [10usize, 1000, 8000] {
            let what = format!("EOS at {eos_at} s, {buffer_ms} ms buffers");
            let desc = format!(
                "appsrc name=src format=time duration=30000000000 ! {} ! appsink name=sink sync=false",
                element_desc()
            );
            let (pipeline, src) = appsrc_pipeline(&desc);
            let n = eos_at * 16_000;
            let per = buffer_ms * 16;
            let feeder = {
                let src = src.clone();
                let audio = audio[..n].to_vec();
                std::thread::spawn(move || {
                    for (i, c) in audio.chunks(per).enumerate() {
                        if src.push_buffer(f32_buffer(c, (i * per) as u64)).is_err() {
                            return;
                        }
                    }
                    let _ = src.end_of_stream();
                })
            };
            let frames = frames_of(&pipeline, &what);
            feeder.join().unwrap();
            let p = pts(&frames);
            assert_eq!(p.len(), n / 640, "{what}: floor(N / 640) frames");
            assert_eq!(p[0], gst::ClockTime::ZERO, "{what}");
            assert_on_grid(&p, &what);
        }
    }
}

/// A segment with a stop (a seek from 2 s to 9 s) gives the 175 frames of those 7 s, the same
/// frames as those 7 s given as a file of their own.
#[test]
fn a_seek_with_a_stop_gives_the_frames_of_the_segment() {
    init();
    let audio = speech_30s();
    let whole = tmp("whole.wav");
    write_wav(&whole, &audio, None);
    let part = tmp("part.wav");
    write_wav(&part, &audio[2 * 16_000..9 * 16_000], None);
    let desc = |file: &Path| {
        format!(
            "filesrc location={} ! wavparse ! audioconvert ! audio/x-raw,format=F32LE ! {} ! \
             appsink name=sink sync=false",
            file.display(),
            element_desc()
        )
    };
    let alone = frames_of(
        &gst::parse::launch(&desc(&part))
            .unwrap()
            .downcast::<gst::Pipeline>()
            .unwrap(),
        "the 7 s file",
    );
    assert_eq!(alone.len(), 175);

    let pipeline = gst::parse::launch(&desc(&whole))
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
    let _wd = watchdog("seek from 2 s to 9 s", Duration::from_secs(180));
    pipeline.set_state(gst::State::Paused).unwrap();
    let _ = pipeline.state(gst::ClockTime::from_seconds(60));
    pipeline
        .seek(
            1.0,
            gst::SeekFlags::FLUSH | gst::SeekFlags::ACCURATE,
            gst::SeekType::Set,
            gst::ClockTime::from_seconds(2),
            gst::SeekType::Set,
            gst::ClockTime::from_seconds(9),
        )
        .unwrap();
    let seeked = frames_of(&pipeline, "the seek from 2 s to 9 s");
    let p = pts(&seeked);
    assert_eq!(p.len(), 175, "7 s of segment give 175 frames");
    assert_eq!(p[0], gst::ClockTime::from_seconds(2));
    assert_on_grid(&p, "seek from 2 s to 9 s");
    assert!(
        bytes_of(&seeked) == bytes_of(&alone),
        "the segment's frames must equal those of the same audio as a file of its own"
    );
}

/// A WAV whose header claims 30 s but holds 5 s: 125 frames, not 750.
#[test]
fn a_wav_header_that_claims_more_than_the_file_holds() {
    init();
    let audio = speech_30s();
    let file = tmp("short.wav");
    write_wav(&file, &audio[..5 * 16_000], Some(30 * 16_000));
    let desc = format!(
        "filesrc location={} ! wavparse ! audioconvert ! audio/x-raw,format=F32LE ! {} ! \
         appsink name=sink sync=false",
        file.display(),
        element_desc()
    );
    let pipeline = gst::parse::launch(&desc)
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
    let frames = frames_of(&pipeline, "a WAV claiming 30 s that holds 5 s");
    let p = pts(&frames);
    assert_eq!(p.len(), 125);
    assert_on_grid(&p, "truncated WAV");
}
