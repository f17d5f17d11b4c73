//! The GStreamer-free engine on its own: bounded memory on long streams, chunking that
//! changes nothing but the chunk boundaries' cost, and a portrait switch mid-stream.

mod common;

use gstdawn::engine::{
    ChunkConfig, Engine, PortraitInput, RuntimeConfig, SeededNoise, Stream, StreamConfig,
    runtime::Provider,
};

fn engine() -> Engine {
    Engine::load(
        &common::pack("tiny64"),
        RuntimeConfig {
            provider: Provider::Cpu,
            ..Default::default()
        },
        &mut |_| {},
    )
    .unwrap()
}

fn portrait(e: &Engine, level: f32) -> PortraitInput {
    let s = e.resolution();
    PortraitInput {
        src_img: (0..3 * s * s)
            .map(|i| level + 0.3 * ((i % 97) as f32 / 97.0))
            .collect(),
        face_mask: (0..s * s)
            .map(|i| {
                if (i / s) > s / 4 && (i / s) < 3 * s / 4 {
                    1.0
                } else {
                    0.0
                }
            })
            .collect(),
        init_pose: [0.0, 0.0, 0.0, 4.79e-4, 56.5, 64.9],
        init_eye: [0.3, 0.3],
    }
}

#[test]
fn memory_stays_flat_on_a_long_stream() {
    let e = engine();
    let avatar = e.avatar(portrait(&e, 0.2)).unwrap();
    let cfg = StreamConfig {
        chunk: ChunkConfig::new(16, 16, 8),
        steps: 1,
        eta: 1.0,
        decoder_batch: 16,
        planned_samples: None,
    };
    let mut stream = Stream::new(cfg, Box::new(SeededNoise::new(1)));
    let speech = common::speech();
    let mut max_held = 0;
    let mut frames = 0;
    // 5 minutes of audio fed in 0.5 s pieces, chunks run as they become ready.
    for i in 0..600 {
        let start = (i * 8000) % (speech.len() - 8000);
        stream.push_audio(&speech[start..start + 8000]);
        while let Some(c) = stream.run_chunk(&e, &avatar, None).unwrap() {
            frames += c.len();
        }
        max_held = max_held.max(stream.held_samples());
    }
    assert_eq!(frames, (600 * 8000 - 640 * (8 + 13)) / 640 / 16 * 16);
    // The history never exceeds the audio one chunk needs: left context + chunk + look-ahead +
    // right context (+ one 0.5 s push).
    let bound = 640 * (50 + 16 + 8 + 13) + 8000;
    assert!(max_held <= bound, "held {max_held} samples, bound {bound}");
}

#[test]
fn a_new_portrait_takes_effect_at_the_next_chunk() {
    let e = engine();
    let dark = e.avatar(portrait(&e, 0.1)).unwrap();
    let light = e.avatar(portrait(&e, 0.6)).unwrap();
    let cfg = StreamConfig {
        chunk: ChunkConfig::new(8, 4, 2),
        steps: 3,
        eta: 1.0,
        decoder_batch: 8,
        planned_samples: None,
    };
    let mut stream = Stream::new(cfg, Box::new(SeededNoise::new(2)));
    stream.push_audio(&common::speech()[..640 * 24]);
    stream.finish();
    let mean =
        |c: &gstdawn::engine::ChunkOutput| c.frames.iter().sum::<f32>() / c.frames.len() as f32;
    let a = stream.run_chunk(&e, &dark, None).unwrap().unwrap();
    let b = stream.run_chunk(&e, &light, None).unwrap().unwrap();
    assert!(mean(&b) > mean(&a) + 0.3, "{} vs {}", mean(&a), mean(&b));
    // Motion continuity survives the switch: the second chunk still had context frames.
    assert_eq!(b.plan.context_frames(), 4);
}
