//! Parity with the independent Python reference (tools/reference): the engine fed the same
//! audio, portrait tensors and noise must reproduce the golden frames and latents to 1e-4, with
//! the same chunk plans and audio alignment.
//! Regenerate the goldens with `.venv/bin/python -m tools.reference.make_golden`.

mod common;

use std::path::Path;

use gstdawn::engine::{
    ChunkConfig, Engine, PortraitInput, ReplayNoise, RuntimeConfig, Stream, StreamConfig,
    audio::Alignment, runtime::Provider,
};
use serde_json::Value;

fn read_f32(path: &Path) -> Vec<f32> {
    std::fs::read(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn run_case(name: &str) {
    let dir = common::root().join("tests/golden").join(name);
    let case: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("case.json")).unwrap()).unwrap();
    let u = |k: &str| case[k].as_u64().unwrap() as usize;
    let floats = |k: &str| -> Vec<f32> {
        case[k]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect()
    };
    let engine = Engine::load(
        &common::root().join(case["pack"].as_str().unwrap()),
        RuntimeConfig {
            provider: Provider::Cpu,
            ..Default::default()
        },
        &mut |_| {},
    )
    .unwrap();
    let pose = floats("init_pose");
    let eye = floats("init_eye");
    let avatar = engine
        .avatar(PortraitInput {
            src_img: read_f32(&dir.join("src_img.f32")),
            face_mask: read_f32(&dir.join("face_mask.f32")),
            init_pose: pose.try_into().unwrap(),
            init_eye: eye.try_into().unwrap(),
        })
        .unwrap();
    let cfg = StreamConfig {
        chunk: ChunkConfig {
            chunk: u("C"),
            context: u("L"),
            lookahead: u("R"),
            audio_left: u("Al"),
            audio_right: u("Ar"),
            pbnet_left: u("Lp"),
        },
        steps: u("sampling_steps"),
        eta: case["eta"].as_f64().unwrap() as f32,
        decoder_batch: 4,
        planned_samples: case["planned_samples"].as_u64().map(|n| n as usize),
    };
    let noise = ReplayNoise::new(read_f32(&dir.join("noise.f32")));
    let mut stream = Stream::new(cfg, Box::new(noise));
    stream.push_audio(&read_f32(&dir.join("audio.f32")));
    stream.finish();
    let (mut frames, mut latents) = (Vec::new(), Vec::new());
    let chunks = case["chunks"].as_array().unwrap();
    let mut ran = 0;
    while let Some(chunk) = stream.run_chunk(&engine, &avatar, None).unwrap() {
        let want = &chunks[ran];
        let p = &chunk.plan;
        let field = |k: &str| want[k].as_u64().unwrap() as usize;
        assert_eq!(
            (p.k0, p.k1, p.ke, p.a0, p.a1, p.c0, p.p0),
            (
                field("k0"),
                field("k1"),
                field("ke"),
                field("a0"),
                field("a1"),
                field("c0"),
                field("p0")
            ),
            "{name}: plan of chunk {ran}"
        );
        let alignment = match want["alignment_samples"].as_u64() {
            Some(n) => Alignment::Clip {
                samples: n as usize,
            },
            None => Alignment::TwoRowsPerFrame,
        };
        assert_eq!(
            chunk.alignment, alignment,
            "{name}: alignment of chunk {ran}"
        );
        frames.extend_from_slice(&chunk.frames);
        latents.extend_from_slice(&chunk.latents);
        ran += 1;
    }
    assert_eq!(ran, chunks.len(), "{name}: chunks");
    assert!(stream.is_done());
    assert_eq!(
        stream.noise_consumed(),
        case["noise_consumed"].as_u64().unwrap(),
        "noise must be drawn in the documented order and amount"
    );
    assert_eq!(stream.total_frames(), Some(u("n_frames")));
    let want_frames = read_f32(&dir.join("frames.f32"));
    let want_latents = read_f32(&dir.join("latents.f32"));
    let tol = case["tolerance"].as_f64().unwrap() as f32;
    let dl = max_abs_diff(&latents, &want_latents);
    let df = max_abs_diff(&frames, &want_frames);
    println!(
        "{name}: {} frames, max |Δ| latents {dl:.2e}, frames {df:.2e}",
        u("n_frames")
    );
    assert!(dl <= tol, "{name}: latents differ by {dl}");
    assert!(df <= tol, "{name}: frames differ by {df}");
}

#[test]
fn chunked_stream_matches_the_python_reference() {
    run_case("tiny64_chunked");
}

#[test]
fn deterministic_ddim_without_context_matches_the_python_reference() {
    run_case("tiny64_eta0_steps5");
}

#[test]
fn one_pass_file_matches_the_python_reference() {
    run_case("tiny64_onepass");
}

#[test]
fn live_stream_matches_the_python_reference() {
    run_case("tiny64_live");
}

#[test]
fn eos_before_the_announced_length_matches_the_python_reference() {
    run_case("tiny64_early_eos");
}
