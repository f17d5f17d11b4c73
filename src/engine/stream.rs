//! One audio stream turned into frames: the state that lives between chunks (audio history,
//! PBNet noise, stored conditions and latents) and the per-chunk pipeline
//! audio features → PBNet → diffusion → decoder (docs/streaming.md).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::Engine;
use super::audio::{self, Alignment, AudioHistory};
use super::avatar::Avatar;
use super::chunker::{self, ChunkConfig, ChunkPlan};
use super::diffusion::{self, ChunkLatents};
use super::noise::Noise;
use super::pack::{
    COND_DIM, EYE_DIM, FEATURE_DIM, LATENT_CHANNELS, POSE_DIM, Role, SAMPLES_PER_FRAME,
};
use super::pbnet::{self, NoiseStore};
use super::pixels;
use super::runtime::ThreadTimes;
use super::stats::StageTimes;

/// Per-stream settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StreamConfig {
    pub chunk: ChunkConfig,
    /// DDIM steps (the pack's default is 20 for DAWN).
    pub steps: usize,
    pub eta: f32,
    /// Frames per decoder call (bounds the decoder's memory).
    pub decoder_batch: usize,
    /// The stream's length in samples when it is known before the first chunk (a file's
    /// duration): the audio features then follow DAWN's alignment for that length
    /// ([`Alignment`]). `None` for live streams. The frame count always follows the audio
    /// actually received.
    pub planned_samples: Option<usize>,
}

/// Receives a chunk's intermediate tensors as they are computed, by name (`audio_features`,
/// `pbnet_pose_delta`, `pbnet_blink_delta`, `cond`, `eps` once per step, `latents`), with
/// their shape; tools/parity compares them with upstream's.
pub trait Tap: Send {
    fn tensor(&mut self, name: &str, shape: &[usize], data: &[f32]);
}

/// Frames of one chunk.
#[derive(Debug, Clone)]
pub struct ChunkOutput {
    pub plan: ChunkPlan,
    /// How the chunk's frames met the audio encoder's rows.
    pub alignment: Alignment,
    /// Sampling steps this chunk ran.
    pub steps: usize,
    /// `[n][3][S][S]` floats in [0, 1], n = new frames.
    pub frames: Vec<f32>,
    /// `[n][3][s][s]` final latents of the new frames.
    pub latents: Vec<f32>,
    pub resolution: usize,
    pub times: StageTimes,
}

impl ChunkOutput {
    pub fn len(&self) -> usize {
        self.plan.new_frames()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Frame `i` of the chunk as packed RGB8 (`S·S·3` bytes).
    pub fn rgb8(&self, i: usize, out: &mut [u8]) {
        let px = 3 * self.resolution * self.resolution;
        pixels::float_to_rgb8(
            &self.frames[i * px..(i + 1) * px],
            self.resolution,
            self.resolution,
            out,
        );
    }
}

/// Per-frame values kept for later windows, indexed by absolute frame number.
#[derive(Debug, Default, Clone)]
struct FrameStore {
    base: usize,
    items: VecDeque<Vec<f32>>,
}

impl FrameStore {
    fn end(&self) -> usize {
        self.base + self.items.len()
    }

    fn push(&mut self, frame: usize, v: Vec<f32>) {
        if self.items.is_empty() {
            self.base = frame;
        }
        debug_assert_eq!(frame, self.end());
        self.items.push_back(v);
    }

    /// Stored values of frames `[start, end)`; empty when `start == end` (no context).
    fn range(&self, start: usize, end: usize) -> impl Iterator<Item = &Vec<f32>> {
        let (a, b) = if start >= end {
            (0, 0)
        } else {
            (start - self.base, end - self.base)
        };
        self.items.range(a..b)
    }

    fn drop_before(&mut self, frame: usize) {
        while self.base < frame && !self.items.is_empty() {
            self.items.pop_front();
            self.base += 1;
        }
    }
}

/// The state of one stream.
pub struct Stream {
    cfg: StreamConfig,
    history: AudioHistory,
    n_total: Option<usize>,
    next_chunk: usize,
    z: NoiseStore,
    /// `cond[k]` (COND_DIM) of emitted frames: PBNet context uses the audio part, diffusion
    /// context the whole condition.
    conds: FrameStore,
    /// Final latents (`[3][s][s]`) of emitted frames for diffusion context.
    latents: FrameStore,
    noise: Box<dyn Noise>,
    scratch: diffusion::Scratch,
    audio_scratch: Vec<f32>,
    times: StageTimes,
    tap: Option<Box<dyn Tap>>,
}

impl Stream {
    pub fn new(cfg: StreamConfig, noise: Box<dyn Noise>) -> Self {
        Self {
            cfg,
            history: AudioHistory::default(),
            n_total: None,
            next_chunk: 0,
            z: NoiseStore::default(),
            conds: FrameStore::default(),
            latents: FrameStore::default(),
            noise,
            scratch: diffusion::Scratch::default(),
            audio_scratch: Vec::new(),
            times: StageTimes::default(),
            tap: None,
        }
    }

    /// Sends every following chunk's intermediate tensors to `tap`.
    pub fn set_tap(&mut self, tap: Box<dyn Tap>) {
        self.tap = Some(tap);
    }

    fn tap(&mut self, name: &str, shape: &[usize], data: &[f32]) {
        if let Some(t) = self.tap.as_mut() {
            t.tensor(name, shape, data);
        }
    }

    pub fn config(&self) -> &StreamConfig {
        &self.cfg
    }

    /// Appends samples (mono, 16 kHz, [-1, 1]).
    pub fn push_audio(&mut self, samples: &[f32]) {
        if self.n_total.is_none() {
            self.history.push(samples);
        }
    }

    /// Appends `n` samples of silence (gaps in a live timeline).
    pub fn push_silence(&mut self, n: usize) {
        if self.n_total.is_none() {
            self.history.push_silence(n);
        }
    }

    /// Marks the end of the audio: the remaining chunks run with what exists.
    pub fn finish(&mut self) {
        self.n_total = Some(self.history.received());
    }

    pub fn received(&self) -> usize {
        self.history.received()
    }

    pub fn is_finished(&self) -> bool {
        self.n_total.is_some()
    }

    /// Total frames of the stream, once EOS is known.
    pub fn total_frames(&self) -> Option<usize> {
        self.n_total.map(chunker::total_frames)
    }

    /// True when EOS was seen and every frame was produced.
    pub fn is_done(&self) -> bool {
        matches!(self.total_frames(), Some(n) if self.next_chunk * self.cfg.chunk.chunk >= n)
    }

    /// The next chunk if its audio is complete. Context windows are clipped to the frames
    /// actually stored (after [`Stream::skip_chunk`] there are none).
    pub fn next_plan(&self) -> Option<ChunkPlan> {
        let mut plan = chunker::plan(
            &self.cfg.chunk,
            self.next_chunk,
            self.received(),
            self.n_total,
        )?;
        let stored = |store: &FrameStore| {
            if store.items.is_empty() {
                plan.k0
            } else {
                store.base
            }
        };
        plan.c0 = plan.c0.max(stored(&self.latents));
        plan.p0 = plan.p0.max(stored(&self.conds));
        Some(plan)
    }

    /// Skips the next chunk without generating it (a live stream that fell behind the clock).
    /// Motion restarts without context after a skip.
    pub fn skip_chunk(&mut self) {
        self.next_chunk += 1;
        self.conds = FrameStore::default();
        self.latents = FrameStore::default();
        self.trim();
    }

    /// Samples the stream still needs before the next chunk can run (0 if ready or done).
    pub fn samples_needed(&self) -> usize {
        let c = &self.cfg.chunk;
        let want =
            SAMPLES_PER_FRAME * (self.next_chunk * c.chunk + c.chunk + c.lookahead + c.audio_right);
        want.saturating_sub(self.received())
    }

    /// Random values drawn so far (the golden test checks the count).
    pub fn noise_consumed(&self) -> u64 {
        self.noise.consumed()
    }

    /// Accumulated stage times of all chunks so far.
    pub fn times(&self) -> StageTimes {
        self.times
    }

    /// Samples held in memory (to check that memory stays flat).
    pub fn held_samples(&self) -> usize {
        self.history.len()
    }

    /// Runs the next chunk if it is ready. `steps` overrides the configured step count (live
    /// degradation); `None` uses the configuration.
    pub fn run_chunk(
        &mut self,
        engine: &Engine,
        avatar: &Avatar,
        steps: Option<usize>,
    ) -> Result<Option<ChunkOutput>> {
        let Some(plan) = self.next_plan() else {
            return Ok(None);
        };
        let steps = steps.unwrap_or(self.cfg.steps).max(1);
        let alignment = Alignment::for_chunk(&self.cfg.chunk, &plan, self.cfg.planned_samples);
        let start = Instant::now();
        // This thread's own graph times: other streams on a shared engine do not count.
        let before = ThreadTimes::current();
        let out = self
            .generate(engine, avatar, &plan, alignment, steps)
            .with_context(|| format!("generating frames {}..{}", plan.k0, plan.k1))?;
        let after = ThreadTimes::current();
        let total = start.elapsed();
        let delta = |name: &str| after.graph(name) - before.graph(name);
        let mut times = StageTimes {
            audio: delta(Role::AudioEncoder.name()),
            pbnet: delta(Role::PbnetPose.name()) + delta(Role::PbnetBlink.name()),
            denoiser: delta(Role::Denoiser.name()),
            decoder: delta(Role::Decoder.name()),
            total,
            waited: after.waited - before.waited,
            denoiser_calls: steps as u64,
            frames: plan.new_frames() as u64,
            diffusion_frames: plan.diffusion_frames() as u64,
            ..Default::default()
        };
        times.host = times.total.saturating_sub(times.inference());
        self.times += times;
        self.next_chunk += 1;
        self.trim();
        Ok(Some(ChunkOutput {
            plan,
            alignment,
            steps,
            frames: out.0,
            latents: out.1,
            resolution: engine.resolution(),
            times,
        }))
    }

    fn generate(
        &mut self,
        engine: &Engine,
        avatar: &Avatar,
        plan: &ChunkPlan,
        alignment: Alignment,
        steps: usize,
    ) -> Result<(Vec<f32>, Vec<f32>)> {
        let m = &engine.pack.manifest;
        let side = engine.latent_size();
        let plane = side * side;
        // 1. Audio features of [k0, ke).
        let feats = audio::chunk_features(
            &engine.audio_encoder,
            &self.history,
            plan,
            alignment,
            m.audio.normalize_eps,
            &mut self.audio_scratch,
        )?;
        let fresh = plan.ke - plan.k0;
        self.tap("audio_features", &[fresh, FEATURE_DIM], &feats);
        // 2. PBNet noise for frames entering a window for the first time, then PBNet.
        self.z
            .extend_to(plan.ke, m.pbnet.noise_dim as usize, self.noise.as_mut())?;
        let mut window = Vec::with_capacity((plan.ke - plan.p0) * FEATURE_DIM);
        for c in self.conds.range(plan.p0, plan.k0) {
            window.extend_from_slice(&c[..FEATURE_DIM]);
        }
        window.extend_from_slice(&feats);
        let motion = pbnet::run(
            &engine.pbnet_pose,
            &engine.pbnet_blink,
            &m.pbnet,
            &self.z,
            &window,
            plan.p0,
            plan.k0,
            plan.ke,
            &avatar.input.init_pose,
            &avatar.input.init_eye,
        )?;
        self.tap("pbnet_pose_delta", &[fresh, POSE_DIM], &motion.pose);
        self.tap("pbnet_blink_delta", &[fresh, EYE_DIM], &motion.eye);
        // 3. Conditions: stored for the context frames, fresh for the rest.
        let f = plan.diffusion_frames();
        let mut cond = Vec::with_capacity(f * COND_DIM);
        for c in self.conds.range(plan.c0, plan.k0) {
            cond.extend_from_slice(c);
        }
        let fresh_start = cond.len();
        for i in 0..(plan.ke - plan.k0) {
            cond.extend_from_slice(&feats[i * FEATURE_DIM..(i + 1) * FEATURE_DIM]);
            cond.extend_from_slice(&motion.pose[i * 6..(i + 1) * 6]);
            cond.extend_from_slice(&motion.eye[i * 2..(i + 1) * 2]);
        }
        let context: Vec<f32> = self
            .latents
            .range(plan.c0, plan.k0)
            .flatten()
            .copied()
            .collect();
        self.tap("cond", &[f, COND_DIM], &cond);
        // 4. Diffusion.
        let schedule_steps = engine.schedule.steps(steps, self.cfg.eta);
        let x = diffusion::sample(
            &engine.denoiser,
            &avatar.static_input,
            &schedule_steps,
            self.cfg.eta,
            m.diffusion.threshold_quantile,
            &ChunkLatents {
                frames: f,
                side,
                cond: &cond,
                context: &context,
                context_frames: plan.context_frames(),
            },
            self.noise.as_mut(),
            &mut self.scratch,
            self.tap.as_mut().map(|t| &mut **t as &mut dyn Tap),
        )?;
        self.tap("latents", &[LATENT_CHANNELS, f, side, side], &x);
        // 5. Decode the new frames.
        let lc = plan.context_frames();
        let n = plan.new_frames();
        let frames = super::decoder::decode(
            &engine.decoder,
            avatar,
            &x,
            f,
            side,
            engine.resolution(),
            lc,
            n,
            self.cfg.decoder_batch,
        )?;
        // 6. Keep the new frames' conditions and latents for the next chunks.
        let mut latents = Vec::with_capacity(n * LATENT_CHANNELS * plane);
        for i in 0..n {
            let k = plan.k0 + i;
            let mut lat = Vec::with_capacity(LATENT_CHANNELS * plane);
            for ch in 0..LATENT_CHANNELS {
                lat.extend_from_slice(&x[(ch * f + lc + i) * plane..][..plane]);
            }
            latents.extend_from_slice(&lat);
            self.latents.push(k, lat);
            let c = &cond[fresh_start + i * COND_DIM..fresh_start + (i + 1) * COND_DIM];
            self.conds.push(k, c.to_vec());
        }
        Ok((frames, latents))
    }

    /// Forgets what no future chunk can need, so memory stays flat.
    fn trim(&mut self) {
        let c = &self.cfg.chunk;
        let k0 = self.next_chunk * c.chunk;
        self.history
            .drop_before(SAMPLES_PER_FRAME * k0.saturating_sub(c.audio_left));
        self.conds
            .drop_before(k0.saturating_sub(c.pbnet_left.max(c.context)));
        self.latents.drop_before(k0.saturating_sub(c.context));
        self.z.drop_before(k0.saturating_sub(c.pbnet_left));
    }
}

/// Time spent in each graph so far, in the order audio, pose, blink, denoiser, decoder.
pub(super) fn graph_times(engine: &Engine) -> [Duration; 5] {
    [
        engine.audio_encoder.run_time().total,
        engine.pbnet_pose.run_time().total,
        engine.pbnet_blink.run_time().total,
        engine.denoiser.run_time().total,
        engine.decoder.run_time().total,
    ]
}
