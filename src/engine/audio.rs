//! Audio for the engine: the sample history a stream keeps, and audio-encoder features for a
//! chunk's window (docs/streaming.md, "Audio features").

use anyhow::{Result, bail};
use ort::value::TensorRef;

use super::chunker::ChunkPlan;
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

/// Runs the audio encoder on the chunk's window and returns the features of frames
/// `[k0, ke)`, `FEATURE_DIM` values each: frame k takes encoder position `2 (k − a0/640)`.
pub fn chunk_features(
    encoder: &Graph,
    history: &AudioHistory,
    plan: &ChunkPlan,
    eps: f64,
    scratch: &mut Vec<f32>,
) -> Result<Vec<f32>> {
    let window = history.window(plan.a0, plan.a1)?;
    normalise(window, eps, scratch);
    let first = plan.a0 / SAMPLES_PER_FRAME;
    let frames = plan.ke - plan.k0;
    encoder.with_session(|session| {
        let input = TensorRef::from_array_view(([1usize, scratch.len()], &scratch[..]))?;
        let outputs = session.run(ort::inputs!["input_values" => input])?;
        let (shape, h) = outputs["last_hidden_state"].try_extract_tensor::<f32>()?;
        let th = shape[1] as usize;
        let mut feats = Vec::with_capacity(frames * FEATURE_DIM);
        for k in plan.k0..plan.ke {
            let j = 2 * (k - first);
            if j >= th {
                bail!(
                    "audio encoder returned {th} features for {} samples; frame {k} needs position {j} \
                     (the graph must give floor((T - 80) / 320) features)",
                    scratch.len()
                );
            }
            feats.extend_from_slice(&h[j * FEATURE_DIM..(j + 1) * FEATURE_DIM]);
        }
        Ok(feats)
    })
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
