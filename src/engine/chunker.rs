//! The chunk scheduler: which frames a chunk generates, which audio it needs, and when it may
//! run (docs/streaming.md, "Chunks"). Pure arithmetic on sample positions, so the result never
//! depends on how the audio arrived.

use super::pack::{SAMPLE_RATE, SAMPLES_PER_FRAME};

/// Chunk sizes, in frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkConfig {
    /// New frames per chunk (C, ≥ 1).
    pub chunk: usize,
    /// Diffusion context frames re-used from the previous chunks (L).
    pub context: usize,
    /// Look-ahead frames generated and discarded (R).
    pub lookahead: usize,
    /// Audio-encoder left and right context (Al, Ar).
    pub audio_left: usize,
    pub audio_right: usize,
    /// PBNet left context (Lp).
    pub pbnet_left: usize,
}

/// Engine defaults for the contexts that are not element properties.
pub const DEFAULT_AUDIO_LEFT: usize = 50;
pub const DEFAULT_AUDIO_RIGHT: usize = 13;
pub const DEFAULT_PBNET_LEFT: usize = 100;

impl ChunkConfig {
    pub fn new(chunk: usize, context: usize, lookahead: usize) -> Self {
        Self {
            chunk: chunk.max(1),
            context,
            lookahead,
            audio_left: DEFAULT_AUDIO_LEFT,
            audio_right: DEFAULT_AUDIO_RIGHT,
            pbnet_left: DEFAULT_PBNET_LEFT,
        }
    }

    /// Frames of audio a chunk waits for beyond its first new frame: the algorithmic latency.
    pub fn wait_frames(&self) -> usize {
        self.chunk + self.lookahead + self.audio_right
    }

    /// End (exclusive, in samples) of the audio window of the chunk starting at frame `k0`
    /// before EOS cuts it: new frames, look-ahead and right context.
    pub fn window_end(&self, k0: usize) -> usize {
        SAMPLES_PER_FRAME * (k0 + self.chunk + self.lookahead + self.audio_right)
    }
}

/// One chunk's frame and sample ranges (all half-open).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkPlan {
    pub index: usize,
    /// new frames [k0, k1)
    pub k0: usize,
    pub k1: usize,
    /// look-ahead [k1, ke)
    pub ke: usize,
    /// audio window [a0, a1) in samples
    pub a0: usize,
    pub a1: usize,
    /// diffusion context [c0, k0)
    pub c0: usize,
    /// PBNet window [p0, ke)
    pub p0: usize,
}

impl ChunkPlan {
    pub fn new_frames(&self) -> usize {
        self.k1 - self.k0
    }
    pub fn context_frames(&self) -> usize {
        self.k0 - self.c0
    }
    /// Frames in the diffusion call: context + new + look-ahead.
    pub fn diffusion_frames(&self) -> usize {
        self.ke - self.c0
    }
}

/// Chunking by mode. Live (new, context, look-ahead frames): small chunks because latency
/// matters. Offline: calls as long as memory allows (the cost is (context + new + look-ahead) / new).
pub const LIVE_CHUNKING: (usize, usize, usize) = (16, 16, 8);
/// Context and look-ahead frames of offline chunks.
pub const OFFLINE_CONTEXT: usize = 20;
pub const OFFLINE_LOOKAHEAD: usize = 10;
/// Longest offline denoiser call (context + new + look-ahead frames) at 128 × 128: about
/// 3.9 GiB in ONNX Runtime on the CPU (tools/bench/memprobe.py, docs/performance.md).
pub const OFFLINE_MAX_CALL: usize = 200;
/// The same above 128 × 128: activations are 4× larger at 256 (80 frames: 3.2 GiB).
pub const OFFLINE_MAX_CALL_LARGE: usize = 80;

/// The longest offline call for a pack resolution.
pub fn offline_max_call(resolution: usize) -> usize {
    if resolution > 128 {
        OFFLINE_MAX_CALL_LARGE
    } else {
        OFFLINE_MAX_CALL
    }
}

/// New frames per offline chunk. A file that fits in one call is rendered in one pass (exactly
/// the reference's work); a longer one is cut into equal chunks, as few as the call limit
/// allows, so no short last chunk pays the context overhead. Unknown length: the largest chunk.
pub fn offline_chunk(
    max_call: usize,
    context: usize,
    lookahead: usize,
    total: Option<usize>,
) -> usize {
    let largest = max_call.saturating_sub(context + lookahead).max(1);
    match total {
        Some(n) if n > 0 && n <= max_call => n,
        Some(n) if n > 0 => n.div_ceil(n.div_ceil(largest)),
        _ => largest,
    }
}

/// Total frames for a stream of `n_total` samples (the DAWN rule).
pub fn total_frames(n_total: usize) -> usize {
    n_total / SAMPLES_PER_FRAME
}

/// Samples at 16 kHz in a duration of `ns` nanoseconds, rounded to the nearest sample (a
/// container's duration is the sample count scaled to nanoseconds and rounded).
pub fn samples_for_duration(ns: u64) -> usize {
    const NS_PER_SAMPLE: u64 = 1_000_000_000 / SAMPLE_RATE as u64;
    (ns.saturating_add(NS_PER_SAMPLE / 2) / NS_PER_SAMPLE) as usize
}

/// The plan for chunk `index` if it can run now.
///
/// `received` is the number of samples received so far; `n_total` is `Some` once EOS has been
/// seen. Returns `None` when the chunk needs more audio, or when the stream has no more frames.
pub fn plan(
    cfg: &ChunkConfig,
    index: usize,
    received: usize,
    n_total: Option<usize>,
) -> Option<ChunkPlan> {
    let spf = SAMPLES_PER_FRAME;
    let k0 = index * cfg.chunk;
    let n_frames = n_total.map(total_frames).unwrap_or(usize::MAX);
    if k0 >= n_frames {
        return None;
    }
    let k1 = (k0 + cfg.chunk).min(n_frames);
    let ke = (k0 + cfg.chunk + cfg.lookahead).min(n_frames);
    let want = cfg.window_end(k0);
    let a1 = n_total.map_or(want, |n| want.min(n));
    if received < a1 {
        return None;
    }
    Some(ChunkPlan {
        index,
        k0,
        k1,
        ke,
        a0: spf * k0.saturating_sub(cfg.audio_left),
        a1,
        c0: k0.saturating_sub(cfg.context),
        p0: k0.saturating_sub(cfg.pbnet_left),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> ChunkConfig {
        ChunkConfig {
            chunk: 8,
            context: 4,
            lookahead: 3,
            audio_left: 6,
            audio_right: 2,
            pbnet_left: 10,
        }
    }

    #[test]
    fn chunk_waits_for_lookahead_and_right_context() {
        let c = cfg();
        let need = 640 * (8 + 3 + 2);
        assert_eq!(plan(&c, 0, need - 1, None), None);
        let p = plan(&c, 0, need, None).unwrap();
        assert_eq!(
            (p.k0, p.k1, p.ke, p.a0, p.a1, p.c0, p.p0),
            (0, 8, 11, 0, need, 0, 0)
        );
        let p = plan(&c, 3, 640 * 40, None).unwrap();
        assert_eq!((p.k0, p.k1, p.ke), (24, 32, 35));
        assert_eq!((p.a0, p.a1, p.c0, p.p0), (640 * 18, 640 * 37, 20, 14));
    }

    #[test]
    fn eos_truncates_the_last_chunks() {
        let c = cfg();
        // 30 frames and a bit: chunks [0,8) [8,16) [16,24) [24,30)
        let n = 640 * 30 + 123;
        assert_eq!(total_frames(n), 30);
        let p = plan(&c, 2, n, Some(n)).unwrap();
        assert_eq!((p.k0, p.k1, p.ke, p.a1), (16, 24, 27, 640 * 29));
        let p = plan(&c, 3, n, Some(n)).unwrap();
        assert_eq!((p.k0, p.k1, p.ke, p.a1), (24, 30, 30, n));
        assert_eq!(p.diffusion_frames(), 10);
        assert_eq!(plan(&c, 4, n, Some(n)), None);
        // Fewer samples than a frame: no chunk at all.
        assert_eq!(plan(&c, 0, 639, Some(639)), None);
    }

    #[test]
    fn the_same_chunk_whatever_arrived_when() {
        let c = cfg();
        let n = 640 * 100;
        for received in [640 * 13, 640 * 50, n] {
            assert_eq!(plan(&c, 0, received, None), plan(&c, 0, n, Some(n)));
        }
    }

    #[test]
    fn durations_convert_to_the_sample_count() {
        // 62 500 ns per sample at 16 kHz; containers round the scaled count.
        assert_eq!(samples_for_duration(0), 0);
        assert_eq!(samples_for_duration(41_040 * 62_500), 41_040);
        assert_eq!(samples_for_duration(41_040 * 62_500 - 31_249), 41_040);
        assert_eq!(samples_for_duration(41_040 * 62_500 + 31_249), 41_040);
        // 30 s at 48 kHz (gst rounds 1_440_000 samples down to whole nanoseconds).
        assert_eq!(samples_for_duration(30_000_000_000), 480_000);
        assert_eq!(samples_for_duration(u64::MAX), (u64::MAX / 62_500) as usize);
    }

    #[test]
    fn offline_chunks_fill_the_call_limit_evenly() {
        // Fits in one call: one pass, however long the look-ahead.
        assert_eq!(offline_chunk(200, 20, 10, Some(200)), 200);
        assert_eq!(offline_chunk(80, 20, 10, Some(80)), 80);
        // 270 frames, at most 170 new per call: two equal chunks, not 170 + 100.
        assert_eq!(offline_chunk(200, 20, 10, Some(270)), 135);
        // 1000 frames: 6 chunks of 167 (each call 20 + 167 + 10 = 197 <= 200).
        assert_eq!(offline_chunk(200, 20, 10, Some(1000)), 167);
        assert_eq!(offline_chunk(200, 20, 10, None), 170);
        assert_eq!(offline_chunk(80, 20, 10, None), 50);
        // A context larger than the limit still makes progress.
        assert_eq!(offline_chunk(10, 20, 10, None), 1);
    }
}
