//! The encoded portrait the engine animates: the portrait encoder's outputs, kept as ONNX
//! Runtime values so every chunk feeds them to the denoiser and decoder without copies.

use anyhow::{Result, bail};
use ort::value::{DynValue, TensorRef};

use super::pack::{EYE_DIM, POSE_DIM};
use super::runtime::Graph;

/// What the portrait analysis hands the engine.
#[derive(Debug, Clone, PartialEq)]
pub struct PortraitInput {
    /// `[3][S][S]` RGB in [0, 1].
    pub src_img: Vec<f32>,
    /// `[S][S]`, 1 inside the face box.
    pub face_mask: Vec<f32>,
    pub init_pose: [f32; POSE_DIM],
    pub init_eye: [f32; EYE_DIM],
}

/// The portrait after the portrait encoder.
pub struct Avatar {
    pub input: PortraitInput,
    pub src_img: DynValue,
    pub skip0: DynValue,
    pub skip1: DynValue,
    pub feat: DynValue,
    pub static_input: DynValue,
}

impl std::fmt::Debug for Avatar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Avatar")
            .field("init_pose", &self.input.init_pose)
            .field("init_eye", &self.input.init_eye)
            .finish()
    }
}

impl Avatar {
    /// Runs the portrait encoder. `resolution` is the pack's S.
    pub fn encode(encoder: &Graph, resolution: usize, input: PortraitInput) -> Result<Self> {
        let s = resolution;
        if input.src_img.len() != 3 * s * s || input.face_mask.len() != s * s {
            bail!(
                "portrait tensors have {} / {} values, expected {} / {} for resolution {s}",
                input.src_img.len(),
                input.face_mask.len(),
                3 * s * s,
                s * s
            );
        }
        let (skip0, skip1, feat, static_input) = encoder.with_session(|session| {
            let mut out = session.run(ort::inputs![
                "src_img" => TensorRef::from_array_view(([1usize, 3, s, s], &input.src_img[..]))?,
                "face_mask" => TensorRef::from_array_view(([1usize, 1, s, s], &input.face_mask[..]))?,
            ])?;
            let mut take = |name: &str| {
                out.remove(name)
                    .ok_or_else(|| anyhow::anyhow!("portrait encoder gave no `{name}`"))
            };
            Ok((take("skip0")?, take("skip1")?, take("feat")?, take("static")?))
        })?;
        let src_img =
            ort::value::Tensor::from_array(([1usize, 3, s, s], input.src_img.clone()))?.into_dyn();
        Ok(Self {
            input,
            src_img,
            skip0,
            skip1,
            feat,
            static_input,
        })
    }
}
