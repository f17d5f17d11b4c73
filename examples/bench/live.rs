//! Live mode: the audio arrives in real time (20 ms blocks paced by the wall clock from the
//! moment the audio starts), each chunk runs as soon as its audio is there, and the time every
//! frame comes out is recorded: the first-frame latency and the audio-to-frame latency a live
//! element would see. Steps stay fixed and no chunk is skipped (the element's live degradation
//! is not part of this measurement).
//!
//! Several streams run on one shared engine, each on its own thread with its own portrait and
//! seed, all starting together: what a process with several avatars sees.

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use gstdawn::engine::pack::{FPS, SAMPLE_RATE, SAMPLES_PER_FRAME};
use gstdawn::engine::{Engine, PortraitInput, SeededNoise, StageTimes, Stream, StreamConfig};

/// Samples per block the source delivers (20 ms, what live audio sources push).
const BLOCK: usize = SAMPLE_RATE as usize / 50;

/// One stream's record.
#[derive(Debug, Default)]
pub struct StreamRun {
    pub times: StageTimes,
    /// Seconds from the audio start to the first frame.
    pub first_frame: Option<f64>,
    /// Compute seconds of the first chunk.
    pub first_chunk: Option<f64>,
    /// Per frame: seconds from the end of its audio to the frame.
    pub latencies: Vec<f64>,
    pub chunks: usize,
}

/// Runs one paced stream per seed on `engine`, concurrently.
pub fn run(
    engine: &Arc<Engine>,
    portrait: &PortraitInput,
    audio: &[f32],
    cfg: StreamConfig,
    seeds: &[u64],
) -> Result<Vec<StreamRun>> {
    let start = Barrier::new(seeds.len());
    std::thread::scope(|scope| {
        let handles: Vec<_> = seeds
            .iter()
            .map(|&seed| {
                let start = &start;
                scope.spawn(move || {
                    let avatar = engine.avatar(portrait.clone())?;
                    let stream = Stream::new(cfg, Box::new(SeededNoise::new(seed)));
                    start.wait();
                    paced(engine, &avatar, stream, audio)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| match h.join() {
                Ok(r) => r,
                Err(_) => bail!("a live stream thread panicked"),
            })
            .collect()
    })
}

fn paced(
    engine: &Engine,
    avatar: &gstdawn::engine::Avatar,
    mut stream: Stream,
    audio: &[f32],
) -> Result<StreamRun> {
    let t0 = Instant::now();
    let mut run = StreamRun::default();
    let mut pushed = 0;
    loop {
        let now = t0.elapsed().as_secs_f64();
        let arrived = ((now * SAMPLE_RATE as f64) as usize / BLOCK * BLOCK).min(audio.len());
        if arrived > pushed {
            stream.push_audio(&audio[pushed..arrived]);
            pushed = arrived;
        }
        if pushed == audio.len() && !stream.is_finished() {
            stream.finish();
        }
        if let Some(out) = stream.run_chunk(engine, avatar, None)? {
            let t = t0.elapsed().as_secs_f64();
            run.first_frame.get_or_insert(t);
            run.first_chunk.get_or_insert(out.times.total.as_secs_f64());
            for k in out.plan.k0..out.plan.k1 {
                run.latencies.push(t - (k + 1) as f64 / FPS as f64);
            }
            run.times += out.times;
            run.chunks += 1;
            continue;
        }
        if stream.is_done() {
            return Ok(run);
        }
        if stream.is_finished() {
            bail!("the stream ended its audio but its next chunk never became ready");
        }
        // Sleep until the block that completes the next chunk's audio has arrived.
        let target = (pushed + stream.samples_needed().max(1)).div_ceil(BLOCK) * BLOCK;
        let at = target.min(audio.len()) as f64 / SAMPLE_RATE as f64;
        let wait = (at - t0.elapsed().as_secs_f64()).max(0.001);
        std::thread::sleep(Duration::from_secs_f64(wait));
    }
}

/// Frames per second of audio (25): `frames / FPS` is the video duration.
pub fn video_seconds(frames: u64) -> f64 {
    frames as f64 / FPS as f64
}

/// The audio-to-frame latency floor of a chunking: the frame that waits longest for audio is
/// the first of a chunk (its chunk, look-ahead and the encoder's right context).
pub fn audio_wait_seconds(cfg: &StreamConfig) -> f64 {
    (cfg.chunk.wait_frames() * SAMPLES_PER_FRAME) as f64 / SAMPLE_RATE as f64
}
