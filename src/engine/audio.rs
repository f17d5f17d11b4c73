//! Audio for the engine: the sample history a stream keeps, and audio-encoder features for a
//! chunk's window (docs/streaming.md, "Audio features").

use anyhow::{Result, bail};
use ort::value::TensorRef;

use super::chunker::{self, ChunkConfig, ChunkPlan};
use super::pack::{FEATURE_DIM, SAMPLES_PER_FRAME};
use super::runtime::Graph;

/// The samples of one stream from a moving start offset onwards. Old samples are dropped once
/// no future chunk can need them, so memory stays flat however long the stream runs.
#[derive(Debug, Default, Clone)]
pub struct AudioHistory {
    /// Absolute index of `samples[0]`.
    base: usize,
    samples: Vec<f32>,
}

impl AudioHistory {
    pub fn received(&self) -> usize {
        self.base + self.samples.len()
    }

    pub fn push(&mut self, samples: &[f32]) {
        self.samples.extend_from_slice(samples);
    }

    pub fn push_silence(&mut self, n: usize) {
        self.samples.resize(self.samples.len() + n, 0.0);
    }

    /// Samples `[a0, a1)` in absolute positions.
    pub fn window(&self, a0: usize, a1: usize) -> Result<&[f32]> {
        if a0 < self.base || a1 > self.received() || a0 > a1 {
            bail!(
                "audio window [{a0}, {a1}) outside the kept history [{}, {})",
                self.base,
                self.received()
            );
        }
        Ok(&self.samples[a0 - self.base..a1 - self.base])
    }

    /// Forgets samples before absolute position `pos`.
    pub fn drop_before(&mut self, pos: usize) {
        if pos > self.base {
            let n = (pos - self.base).min(self.samples.len());
            self.samples.drain(..n);
            self.base += n;
        }
    }

    /// Samples currently held (for memory statistics).
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }
}

/// Zero mean, unit variance over the window, as the HuBERT feature extractor does over a whole
/// utterance (`do_normalize`): statistics in f64, applied in f32.
pub fn normalise(window: &[f32], eps: f64, out: &mut Vec<f32>) {
    out.clear();
    let n = window.len().max(1) as f64;
    let mean = window.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = window
        .iter()
        .map(|&v| (v as f64 - mean).powi(2))
        .sum::<f64>()
        / n;
    let inv = 1.0 / (var + eps).sqrt();
    let (mean, inv) = (mean as f32, inv as f32);
    out.extend(window.iter().map(|&v| (v - mean) * inv));
}

/// Which rows of the audio encoder's output each frame reads (docs/streaming.md, "Audio
/// features").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alignment {
    /// Frame k reads row 2k: the rule when the stream's length is unknown (live).
    TwoRowsPerFrame,
    /// DAWN's rule for a clip of `samples` samples: its N = ⌊n/640⌋ frames are spread evenly
    /// over its Th = ⌊(n − 80)/320⌋ rows, frame k at position k·(Th − 1)/(N − 1), linearly
    /// interpolated (`interp1d(arange(Th), H)(linspace(0, Th − 1, N))` upstream).
    Clip { samples: usize },
}

impl Alignment {
    /// The alignment of one chunk. `planned` is the length announced before the first chunk
    /// (a file's duration), if any. A chunk whose window EOS cut short runs after EOS and uses
    /// the real length (`plan.a1`); the others use the announced length as long as their
    /// frames lie inside it. Live streams (nothing announced) keep two rows per frame, except
    /// a first chunk that already holds the whole stream.
    pub fn for_chunk(cfg: &ChunkConfig, plan: &ChunkPlan, planned: Option<usize>) -> Self {
        let cut_by_eos = plan.a1 < cfg.window_end(plan.k0);
        if cut_by_eos && (planned.is_some() || plan.k0 == 0) {
            Self::Clip { samples: plan.a1 }
        } else if let Some(n) = planned
            && !cut_by_eos
            && plan.ke <= chunker::total_frames(n)
        {
            Self::Clip { samples: n }
        } else {
            Self::TwoRowsPerFrame
        }
    }

    /// Position of frame `k` in rows of the whole stream's encoder output. For a clip this is
    /// numpy's `linspace(0, Th − 1, N)[k]`: `k · step` with the last value exact.
    pub fn position(&self, k: usize) -> f64 {
        match *self {
            Self::TwoRowsPerFrame => (2 * k) as f64,
            Self::Clip { samples } => {
                let n = chunker::total_frames(samples);
                let th = encoder_rows(samples);
                if n <= 1 {
                    0.0
                } else if k + 1 == n {
                    (th - 1) as f64
                } else {
                    k as f64 * ((th - 1) as f64 / (n - 1) as f64)
                }
            }
        }
    }
}

/// Rows the audio encoder gives for `samples` samples: ⌊(T − 80) / 320⌋ (HuBERT's 400-sample
/// receptive field, hop 320).
pub fn encoder_rows(samples: usize) -> usize {
    samples.saturating_sub(WINDOW_SAMPLES - HOP_SAMPLES) / HOP_SAMPLES
}

const HOP_SAMPLES: usize = 320;
const WINDOW_SAMPLES: usize = 400;

/// The feature at position `p` (in rows of the whole stream) from a window whose first row is
/// stream row `first`, the way scipy's `interp1d(kind="linear")` evaluates it: the interval
/// `(lo, lo + 1]` that holds `p` (`[0, 1]` for p = 0), `f32(f64(f32(h[hi] − h[lo])) · w + h[lo])`.
/// Rows outside the window read its first or last row (only reachable with a right audio
/// context under one frame).
fn interpolate(h: &[f32], rows: usize, first: usize, p: f64, out: &mut Vec<f32>) {
    let lo = (p.ceil() as usize).saturating_sub(1);
    let w = p - lo as f64;
    let local = |row: usize| row.saturating_sub(first).min(rows - 1);
    let (a, b) = (local(lo), local(lo + 1));
    let (ra, rb) = (
        &h[a * FEATURE_DIM..(a + 1) * FEATURE_DIM],
        &h[b * FEATURE_DIM..(b + 1) * FEATURE_DIM],
    );
    out.extend(
        ra.iter()
            .zip(rb)
            .map(|(&ya, &yb)| ((yb - ya) as f64 * w + ya as f64) as f32),
    );
}

/// Checks the encoder's output shape for an input of `samples` samples and returns its rows.
pub fn check_output_shape(shape: &[i64], samples: usize) -> Result<usize> {
    let want = encoder_rows(samples);
    match shape {
        [1, th, w] if *w == FEATURE_DIM as i64 && *th == want as i64 => Ok(want),
        [1, _, w] if *w != FEATURE_DIM as i64 => bail!(
            "the audio encoder returns features of width {w}, the contract needs {FEATURE_DIM} \
             (HuBERT-Large's last_hidden_state); re-export the pack with tools/export"
        ),
        _ => bail!(
            "the audio encoder returned shape {shape:?} for {samples} samples, the contract \
             needs [1, {want}, {FEATURE_DIM}] (Th = floor((T - 80) / 320)); re-export the pack \
             with tools/export"
        ),
    }
}

/// Runs the encoder on `samples` (already normalised) and returns its rows and features.
pub fn encode(encoder: &Graph, samples: &[f32]) -> Result<(usize, Vec<f32>)> {
    encoder.with_session(|session| {
        let input = TensorRef::from_array_view(([1usize, samples.len()], samples))?;
        let outputs = session.run(ort::inputs!["input_values" => input])?;
        let (shape, h) = outputs["last_hidden_state"].try_extract_tensor::<f32>()?;
        let rows = check_output_shape(shape, samples.len())?;
        Ok((rows, h.to_vec()))
    })
}

/// Runs the encoder once on 720 samples of silence and checks the output shape, so that a graph
/// whose declared shape hides another feature width fails at load rather than mid-stream.
pub fn check_encoder(encoder: &Graph) -> Result<()> {
    encode(encoder, &[0.0; 720]).map(|_| ())
}

/// Runs the audio encoder on the chunk's window and returns the features of frames
/// `[k0, ke)`, `FEATURE_DIM` values each, aligned as `alignment` says.
pub fn chunk_features(
    encoder: &Graph,
    history: &AudioHistory,
    plan: &ChunkPlan,
    alignment: Alignment,
    eps: f64,
    scratch: &mut Vec<f32>,
) -> Result<Vec<f32>> {
    let window = history.window(plan.a0, plan.a1)?;
    normalise(window, eps, scratch);
    let (rows, h) = encode(encoder, scratch)?;
    let first = 2 * (plan.a0 / SAMPLES_PER_FRAME);
    let mut feats = Vec::with_capacity((plan.ke - plan.k0) * FEATURE_DIM);
    for k in plan.k0..plan.ke {
        match alignment {
            Alignment::TwoRowsPerFrame => {
                let j = 2 * k - first;
                if j >= rows {
                    bail!(
                        "audio encoder returned {rows} features for {} samples; frame {k} needs \
                         row {j}",
                        scratch.len()
                    );
                }
                feats.extend_from_slice(&h[j * FEATURE_DIM..(j + 1) * FEATURE_DIM]);
            }
            Alignment::Clip { .. } => {
                if rows == 0 {
                    bail!("audio window of {} samples gave no features", scratch.len());
                }
                interpolate(&h, rows, first, alignment.position(k), &mut feats);
            }
        }
    }
    Ok(feats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_keeps_absolute_positions() {
        let mut h = AudioHistory::default();
        h.push(&[1.0, 2.0, 3.0]);
        h.push_silence(2);
        assert_eq!(h.received(), 5);
        h.drop_before(2);
        assert_eq!(h.window(2, 5).unwrap(), &[3.0, 0.0, 0.0]);
        assert!(h.window(1, 3).is_err());
        assert_eq!(h.len(), 3);
    }

    fn plan(k0: usize, k1: usize, ke: usize, a0: usize, a1: usize) -> ChunkPlan {
        ChunkPlan {
            index: 0,
            k0,
            k1,
            ke,
            a0,
            a1,
            c0: k0,
            p0: k0,
        }
    }

    #[test]
    fn clip_positions_spread_n_frames_over_th_rows() {
        // 64 frames: Th − 1 = 126, 127 or 128 by n mod 640 (< 80, < 400, ≥ 400).
        for (r, th) in [
            (0, 127),
            (79, 127),
            (80, 128),
            (399, 128),
            (400, 129),
            (639, 129),
        ] {
            let n = 640 * 64 + r;
            assert_eq!(encoder_rows(n), th, "{n}");
            let a = Alignment::Clip { samples: n };
            assert_eq!(a.position(0), 0.0);
            assert_eq!(a.position(63), (th - 1) as f64);
            let step = (th - 1) as f64 / 63.0;
            assert_eq!(a.position(10), 10.0 * step);
            if r < 80 {
                assert!((0..64).all(|k| a.position(k) == (2 * k) as f64));
            }
        }
        assert_eq!(Alignment::Clip { samples: 700 }.position(0), 0.0);
        assert_eq!(Alignment::TwoRowsPerFrame.position(7), 14.0);
    }

    #[test]
    fn each_chunk_aligns_to_the_length_it_can_know() {
        let cfg = ChunkConfig::new(10, 2, 3);
        let full = cfg.window_end(0);
        let n = 640 * 40 + 500;
        // A complete window: the announced length, while its frames lie inside it.
        let p = plan(0, 10, 13, 0, full);
        assert_eq!(
            Alignment::for_chunk(&cfg, &p, Some(n)),
            Alignment::Clip { samples: n }
        );
        assert_eq!(
            Alignment::for_chunk(&cfg, &p, None),
            Alignment::TwoRowsPerFrame
        );
        assert_eq!(
            Alignment::for_chunk(&cfg, &p, Some(640 * 12)),
            Alignment::TwoRowsPerFrame,
            "frames past the announced length"
        );
        // A window cut by EOS (EOS before the announced length too): the real length.
        let real = 640 * 30 + 7;
        let cut = plan(20, 30, 30, 0, real);
        assert_eq!(
            Alignment::for_chunk(&cfg, &cut, Some(n)),
            Alignment::Clip { samples: real }
        );
        assert_eq!(
            Alignment::for_chunk(&cfg, &cut, None),
            Alignment::TwoRowsPerFrame,
            "live: earlier chunks used two rows per frame"
        );
        // The whole stream in a first chunk: its length is known when the chunk runs.
        let whole = plan(0, 8, 8, 0, 640 * 8 + 100);
        assert_eq!(
            Alignment::for_chunk(&cfg, &whole, None),
            Alignment::Clip {
                samples: 640 * 8 + 100
            }
        );
    }

    #[test]
    fn interpolation_evaluates_like_scipy_interp1d() {
        // Three rows of the stream, window starting at stream row 2.
        let mut h = vec![0f32; 3 * FEATURE_DIM];
        h[0] = 1.0;
        h[FEATURE_DIM] = 2.0;
        h[2 * FEATURE_DIM] = 4.0;
        let at = |p: f64| {
            let mut out = Vec::new();
            interpolate(&h, 3, 2, p, &mut out);
            assert_eq!(out.len(), FEATURE_DIM);
            out[0]
        };
        assert_eq!(at(2.0), 1.0);
        assert_eq!(at(2.25), 1.25);
        assert_eq!(at(3.0), 2.0);
        assert_eq!(at(3.5), 3.0);
        assert_eq!(at(4.0), 4.0);
        // Outside the window: its first and last rows.
        assert_eq!(at(1.5), 1.0);
        assert_eq!(at(4.5), 4.0);
        // scipy's slope is a float32 difference, the rest float64.
        let (a, b) = (0.1f32, 0.7f32);
        let mut g = vec![0f32; 2 * FEATURE_DIM];
        g[0] = a;
        g[FEATURE_DIM] = b;
        let mut out = Vec::new();
        interpolate(&g, 2, 0, 0.3, &mut out);
        assert_eq!(out[0], ((b - a) as f64 * 0.3 + a as f64) as f32);
    }

    #[test]
    fn encoder_output_shape_is_checked() {
        assert_eq!(check_output_shape(&[1, 2, 1024], 720).unwrap(), 2);
        let e = check_output_shape(&[1, 2, 64], 720)
            .unwrap_err()
            .to_string();
        assert!(e.contains("width 64") && e.contains("re-export"), "{e}");
        let e = check_output_shape(&[1, 3, 1024], 720)
            .unwrap_err()
            .to_string();
        assert!(e.contains("[1, 2, 1024]"), "{e}");
    }

    #[test]
    fn normalised_window_has_zero_mean_unit_variance() {
        let w: Vec<f32> = (0..1000)
            .map(|i| (i as f32 * 0.37).sin() * 0.2 + 0.05)
            .collect();
        let mut out = Vec::new();
        normalise(&w, 1e-7, &mut out);
        let mean: f32 = out.iter().sum::<f32>() / out.len() as f32;
        let var: f32 = out.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / out.len() as f32;
        assert!(
            mean.abs() < 1e-4 && (var - 1.0).abs() < 1e-3,
            "{mean} {var}"
        );
        // Digital silence stays silent instead of blowing up.
        normalise(&[0.0; 100], 1e-7, &mut out);
        assert!(out.iter().all(|&v| v == 0.0));
    }
}
