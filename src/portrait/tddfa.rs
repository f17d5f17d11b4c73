//! 3DDFA_V2 (MobileNet-0.5, 120×120): ROI from a face box, regression of the 62 3DMM
//! parameters and the 68 auxiliary landmarks (docs/portrait.md §2).

use anyhow::{Context, Result, bail};
use image::RgbImage;
use image::imageops::FilterType;
use ort::value::Tensor;

use super::models::{FaceModels, PARAM_COUNT};
use super::pose;
use super::resample::{self, Pad, crop_padded};

/// Side of the network input.
pub const INPUT: u32 = 120;
/// Number of landmarks in `lm_aux`.
pub const LANDMARKS: usize = 68;

/// A square ROI: x, y of the top-left corner and the side, in image pixels.
pub type Roi = [f32; 3];

/// What 3DDFA found for one face, in the pixels of the image given to [`run`].
#[derive(Debug, Clone, PartialEq)]
pub struct Fit {
    /// The integer ROI actually cropped (x, y, side).
    pub roi: Roi,
    /// The 62 de-normalised parameters.
    pub param: Vec<f32>,
    /// `[yaw, pitch, roll, s, tx, ty]` (see [`pose::pose_from_camera`]).
    pub pose: [f32; 6],
    /// 68 landmarks (iBUG order).
    pub landmarks: Vec<[f32; 2]>,
}

/// 3DDFA_V2's `parse_roi_box_from_bbox`: a square of side int(1.58·(w+h)/2) centred on the box
/// centre moved down by 0.14·(w+h)/2. `bbox` is x, y, w, h.
pub fn roi_from_box(bbox: [f32; 4]) -> Roi {
    let [x, y, w, h] = bbox;
    let old = (w + h) / 2.0;
    let cx = x + w / 2.0;
    let cy = y + h / 2.0 + old * 0.14;
    let size = (old * 1.58).trunc();
    [cx - size / 2.0, cy - size / 2.0, size]
}

/// A YuNet-like face box `[x, y, w, h]` from 68 landmarks, for when no detector box exists
/// (`FaceSelect::Off`). Calibrated on the test photos at several detector input sizes:
/// YuNet's box is 0.955 × the landmark hull's width, 1.225 × its height, same horizontal
/// centre, centre 0.125 × the hull height higher (it includes the forehead).
pub fn box_from_landmarks(lm: &[[f32; 2]]) -> [f32; 4] {
    let (mut x0, mut y0, mut x1, mut y1) = (f32::MAX, f32::MAX, f32::MIN, f32::MIN);
    for p in lm {
        x0 = x0.min(p[0]);
        y0 = y0.min(p[1]);
        x1 = x1.max(p[0]);
        y1 = y1.max(p[1]);
    }
    let (hw, hh) = (x1 - x0, y1 - y0);
    let (w, h) = (0.955 * hw, 1.225 * hh);
    let cx = (x0 + x1) / 2.0;
    let cy = (y0 + y1) / 2.0 - 0.125 * hh;
    [cx - w / 2.0, cy - h / 2.0, w, h]
}

/// Runs the regressor on `roi` of `img`.
///
/// The ROI is rounded to whole pixels and cropped with zero padding, as 3DDFA_V2's `crop_img`
/// does; it is then resized to 120×120 with a triangle filter (bilinear that also averages when
/// shrinking, so large photos do not alias), converted to BGR and normalised (px − 127.5)/128.
pub fn run(models: &FaceModels, img: &RgbImage, roi: Roi) -> Result<Fit> {
    let sx = roi[0].round() as i64;
    let sy = roi[1].round() as i64;
    let ex = (roi[0] + roi[2]).round() as i64;
    let ey = (roi[1] + roi[2]).round() as i64;
    let (cw, ch) = ((ex - sx).max(1) as u32, (ey - sy).max(1) as u32);
    let crop = crop_padded(img, sx, sy, cw, ch, Pad::Zero);
    let small = resample::resize(crop, INPUT, INPUT, FilterType::Triangle);
    let plane = (INPUT * INPUT) as usize;
    let mut input = vec![0.0f32; 3 * plane];
    for (i, px) in small.as_raw().chunks_exact(3).enumerate() {
        input[i] = (f32::from(px[2]) - 127.5) / 128.0;
        input[plane + i] = (f32::from(px[1]) - 127.5) / 128.0;
        input[2 * plane + i] = (f32::from(px[0]) - 127.5) / 128.0;
    }
    let shape = [1usize, 3, INPUT as usize, INPUT as usize];
    let (raw_param, lm_aux) = models.tddfa.with_session(|session| {
        let tensor = Tensor::from_array((shape, input))?;
        let outputs = session.run(ort::inputs!["input" => tensor])?;
        let (_, p) = outputs
            .get("param")
            .context("3DDFA produced no `param`")?
            .try_extract_tensor::<f32>()?;
        let (_, l) = outputs
            .get("lm_aux")
            .context("3DDFA produced no `lm_aux`")?
            .try_extract_tensor::<f32>()?;
        Ok((p.to_vec(), l.to_vec()))
    })?;
    if raw_param.len() != PARAM_COUNT || lm_aux.len() != 2 * LANDMARKS {
        bail!(
            "3DDFA returned {} params and {} landmark values, expected {PARAM_COUNT} and {}",
            raw_param.len(),
            lm_aux.len(),
            2 * LANDMARKS
        );
    }
    let param: Vec<f32> = raw_param
        .iter()
        .zip(models.param_std.iter().zip(&models.param_mean))
        .map(|(p, (s, m))| p * s + m)
        .collect();
    let pose = pose::pose_from_camera(&param[..12]);
    // lm_aux: [x0..x67, y0..y67] in [−1, 1] over the ROI as cropped.
    let (kx, ky) = (cw as f32 / 2.0, ch as f32 / 2.0);
    let landmarks = (0..LANDMARKS)
        .map(|i| {
            [
                sx as f32 + (lm_aux[i] + 1.0) * kx,
                sy as f32 + (lm_aux[LANDMARKS + i] + 1.0) * ky,
            ]
        })
        .collect();
    Ok(Fit {
        roi: [sx as f32, sy as f32, cw as f32],
        param,
        pose,
        landmarks,
    })
}
