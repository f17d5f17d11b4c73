//! PBNet: head pose and blink deltas per frame (docs/streaming.md, "PBNet"). Each frame's
//! noise is drawn once and stored, so a frame seen by several overlapping windows always gets
//! the same noise and pose/blink stay continuous across chunks.

use std::collections::VecDeque;

use anyhow::{Result, bail};
use ort::value::TensorRef;

use super::noise::Noise;
use super::pack::{EYE_DIM, FEATURE_DIM, POSE_DIM, PbnetSpec};
use super::runtime::Graph;

/// Per-frame PBNet noise for the frames of the current windows.
#[derive(Debug, Default, Clone)]
pub struct NoiseStore {
    /// Frame index of the first stored entry.
    base: usize,
    pose: VecDeque<Vec<f32>>,
    blink: VecDeque<Vec<f32>>,
}

impl NoiseStore {
    /// First frame that has no noise yet.
    pub fn next_frame(&self) -> usize {
        self.base + self.pose.len()
    }

    /// Draws noise for frames up to `end` (exclusive), frame by frame, pose then blink.
    pub fn extend_to(&mut self, end: usize, dim: usize, noise: &mut dyn Noise) -> Result<()> {
        while self.next_frame() < end {
            let mut p = vec![0f32; dim];
            noise.fill(&mut p)?;
            let mut b = vec![0f32; dim];
            noise.fill(&mut b)?;
            self.pose.push_back(p);
            self.blink.push_back(b);
        }
        Ok(())
    }

    /// Forgets frames before `frame`.
    pub fn drop_before(&mut self, frame: usize) {
        while self.base < frame && !self.pose.is_empty() {
            self.pose.pop_front();
            self.blink.pop_front();
            self.base += 1;
        }
    }

    fn gather(&self, which: &VecDeque<Vec<f32>>, p0: usize, end: usize) -> Result<Vec<f32>> {
        if p0 < self.base || end > self.next_frame() {
            bail!(
                "PBNet noise for frames [{p0}, {end}) not stored (have [{}, {}))",
                self.base,
                self.next_frame()
            );
        }
        Ok(which
            .range(p0 - self.base..end - self.base)
            .flatten()
            .copied()
            .collect())
    }
}

/// Pose and eye deltas, in the raw units the diffusion's condition uses.
#[derive(Debug, Clone, Default)]
pub struct Motion {
    /// `POSE_DIM` values per frame.
    pub pose: Vec<f32>,
    /// `EYE_DIM` values per frame.
    pub eye: Vec<f32>,
}

/// Runs both PBNet decoders on the window `[p0, ke)` and returns the deltas of frames
/// `[k0, ke)`. `audio` holds the window's features, `FEATURE_DIM` per frame.
#[allow(clippy::too_many_arguments)]
pub fn run(
    pose_graph: &Graph,
    blink_graph: &Graph,
    spec: &PbnetSpec,
    store: &NoiseStore,
    audio: &[f32],
    p0: usize,
    k0: usize,
    ke: usize,
    init_pose: &[f32; POSE_DIM],
    init_eye: &[f32; EYE_DIM],
) -> Result<Motion> {
    let m = ke - p0;
    debug_assert_eq!(audio.len(), m * FEATURE_DIM);
    let dim = spec.noise_dim as usize;
    let range: Vec<f32> = (0..POSE_DIM)
        .map(|i| spec.pose_max[i] - spec.pose_min[i])
        .collect();
    let pose_init: Vec<f32> = (0..POSE_DIM)
        .map(|i| (init_pose[i] - spec.pose_min[i]) / range[i])
        .collect();
    let run_one = |graph: &Graph, init: &[f32], z: Vec<f32>, d: usize| -> Result<Vec<f32>> {
        graph.with_session(|session| {
            let init = TensorRef::from_array_view(([1usize, 1, d], init))?;
            let z = TensorRef::from_array_view(([m, 1, dim], &z[..]))?;
            let a = TensorRef::from_array_view(([1usize, m, FEATURE_DIM], audio))?;
            let out = session.run(ort::inputs!["init_state" => init, "z" => z, "audio" => a])?;
            let (_, delta) = out["delta"].try_extract_tensor::<f32>()?;
            if delta.len() != m * d {
                bail!(
                    "{} returned {} values, expected {}",
                    graph.name,
                    delta.len(),
                    m * d
                );
            }
            Ok(delta[(k0 - p0) * d..].to_vec())
        })
    };
    let pose_norm = run_one(
        pose_graph,
        &pose_init,
        store.gather(&store.pose, p0, ke)?,
        POSE_DIM,
    )?;
    let eye = run_one(
        blink_graph,
        init_eye,
        store.gather(&store.blink, p0, ke)?,
        EYE_DIM,
    )?;
    // Normalised pose delta → raw units (degrees, scale, ROI pixels).
    let pose = pose_norm
        .chunks_exact(POSE_DIM)
        .flat_map(|d| d.iter().zip(&range).map(|(v, r)| v * r))
        .collect();
    Ok(Motion { pose, eye })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::noise::SeededNoise;

    #[test]
    fn store_draws_each_frame_once_in_order() {
        let mut noise = SeededNoise::new(7);
        let mut store = NoiseStore::default();
        store.extend_to(3, 4, &mut noise).unwrap();
        store.extend_to(5, 4, &mut noise).unwrap();
        store.extend_to(4, 4, &mut noise).unwrap();
        assert_eq!(noise.consumed(), 5 * 2 * 4);
        let mut again = SeededNoise::new(7);
        let mut all = vec![0f32; 40];
        again.fill(&mut all).unwrap();
        // frame 1's pose noise is values 8..12 (frame 0: pose 0..4, blink 4..8)
        assert_eq!(
            store.gather(&store.pose, 1, 2).unwrap(),
            all[8..12].to_vec()
        );
        assert_eq!(
            store.gather(&store.blink, 4, 5).unwrap(),
            all[36..40].to_vec()
        );
        store.drop_before(2);
        assert!(store.gather(&store.pose, 1, 3).is_err());
        assert_eq!(store.next_frame(), 5);
    }
}
