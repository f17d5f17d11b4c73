//! Face detection with YuNet (libfacedetection.train 2023, the detector OpenCV ships as
//! `FaceDetectorYN`): pre-processing, anchor-free decoding of the per-stride heads, NMS.

use anyhow::{Context, Result, bail};
use image::RgbImage;
use image::imageops::FilterType;
use ort::value::Tensor;

use super::models::FaceModels;
use super::resample;

/// Largest long side of the detector input (dynamic-size graph): bigger images are shrunk.
pub const MAX_DETECT_SIDE: u32 = 640;
/// Smallest long side of the detector input: smaller images are enlarged, so that a small
/// face crop still spans several cells of the coarsest stride.
pub const MIN_DETECT_SIDE: u32 = 320;
/// Faces scoring below this (sqrt(cls·obj)) are dropped.
pub const SCORE_THRESHOLD: f32 = 0.6;
/// Boxes overlapping a better one by more than this IoU are dropped (OpenCV's default).
pub const NMS_IOU: f32 = 0.3;
const STRIDES: [u32; 3] = [8, 16, 32];
/// Input sizes are padded to a multiple of the largest stride.
const DIVISOR: u32 = 32;

/// One detected face, in the pixels of the image given to [`detect`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Detection {
    /// x, y, w, h.
    pub bbox: [f32; 4],
    /// sqrt(cls · obj), in [0, 1].
    pub score: f32,
    /// Right eye, left eye, nose tip, right and left mouth corner (YuNet order; "right" is the
    /// subject's right, on the image's left).
    pub kps: [[f32; 2]; 5],
}

impl Detection {
    /// Box area in pixels².
    pub fn area(&self) -> f32 {
        self.bbox[2].max(0.0) * self.bbox[3].max(0.0)
    }

    /// The mean of the 5 landmarks (the face centre the crop is built around).
    pub fn centre(&self) -> [f32; 2] {
        let mut c = [0.0, 0.0];
        for k in &self.kps {
            c[0] += k[0] / 5.0;
            c[1] += k[1] / 5.0;
        }
        c
    }
}

/// Detects faces in `img`; the result is sorted by area, largest first.
///
/// The detector sees the image at its own size when its long side is between
/// [`MIN_DETECT_SIDE`] and [`MAX_DETECT_SIDE`], else scaled into that range (this is also how
/// the face crops in `tests/data` were made: full-size YuNet on 512–600 px images).
pub fn detect(models: &FaceModels, img: &RgbImage) -> Result<Vec<Detection>> {
    let long = img.width().max(img.height());
    detect_at(models, img, long.clamp(MIN_DETECT_SIDE, MAX_DETECT_SIDE))
}

/// As [`detect`], with the long side of the detector input set to `side` (dynamic-size graph
/// only; the fixed graph always uses its own size).
pub fn detect_at(models: &FaceModels, img: &RgbImage, side: u32) -> Result<Vec<Detection>> {
    let (w, h) = img.dimensions();
    if w == 0 || h == 0 {
        return Ok(Vec::new());
    }
    // Scale so the long side fits the detector input; the image is placed at the top-left
    // of a zero-filled input whose size is a multiple of 32 (or the fixed graph size).
    let (scale, in_w, in_h) = match models.yunet_fixed {
        Some((fw, fh)) => {
            let s = (fw as f32 / w as f32).min(fh as f32 / h as f32);
            (s, fw, fh)
        }
        None => {
            let s = side.max(DIVISOR) as f32 / w.max(h) as f32;
            let rw = ((w as f32 * s).round() as u32).max(1);
            let rh = ((h as f32 * s).round() as u32).max(1);
            (
                s,
                rw.div_ceil(DIVISOR) * DIVISOR,
                rh.div_ceil(DIVISOR) * DIVISOR,
            )
        }
    };
    let rw = ((w as f32 * scale).round() as u32).clamp(1, in_w);
    let rh = ((h as f32 * scale).round() as u32).clamp(1, in_h);
    let resized = resample::shrink_fast(img.clone(), rw, rh, FilterType::Triangle);
    let input = bgr_planar(&resized, in_w, in_h);
    let shape = [1usize, 3, in_h as usize, in_w as usize];

    let mut found = models.yunet.with_session(|session| {
        let tensor = Tensor::from_array((shape, input))?;
        let outputs = session.run(ort::inputs!["input" => tensor])?;
        let mut found = Vec::new();
        for stride in STRIDES {
            let get = |head: &str| -> Result<Vec<f32>> {
                let name = format!("{head}_{stride}");
                let value = outputs
                    .get(&name)
                    .with_context(|| format!("YuNet produced no `{name}`"))?;
                let (_, data) = value.try_extract_tensor::<f32>()?;
                Ok(data.to_vec())
            };
            let heads = Heads {
                cls: get("cls")?,
                obj: get("obj")?,
                bbox: get("bbox")?,
                kps: get("kps")?,
            };
            decode_stride(&heads, stride, in_w, in_h, SCORE_THRESHOLD, &mut found)?;
        }
        Ok(found)
    })?;
    found = nms(found, NMS_IOU);
    // Back to the caller's pixels.
    for d in &mut found {
        for v in &mut d.bbox {
            *v /= scale;
        }
        for k in &mut d.kps {
            k[0] /= scale;
            k[1] /= scale;
        }
    }
    found.sort_by(|a, b| b.area().total_cmp(&a.area()));
    Ok(found)
}

/// [1, 3, in_h, in_w] BGR 0–255, image at the top-left, zeros elsewhere.
fn bgr_planar(img: &RgbImage, in_w: u32, in_h: u32) -> Vec<f32> {
    let plane = (in_w * in_h) as usize;
    let mut out = vec![0.0f32; 3 * plane];
    let (w, h) = img.dimensions();
    let raw = img.as_raw();
    for y in 0..h as usize {
        let row = &raw[y * w as usize * 3..(y + 1) * w as usize * 3];
        let base = y * in_w as usize;
        for (x, px) in row.chunks_exact(3).enumerate() {
            out[base + x] = f32::from(px[2]);
            out[plane + base + x] = f32::from(px[1]);
            out[2 * plane + base + x] = f32::from(px[0]);
        }
    }
    out
}

/// The four heads of one stride, flattened (row-major anchors, one per cell).
pub struct Heads {
    pub cls: Vec<f32>,
    pub obj: Vec<f32>,
    pub bbox: Vec<f32>,
    pub kps: Vec<f32>,
}

/// Decodes one stride's heads as OpenCV's `FaceDetectorYN` does: one anchor per cell,
/// score = sqrt(clamp(cls)·clamp(obj)), centre = (col + dx, row + dy)·stride,
/// size = exp(dw, dh)·stride, landmarks = (col + kx, row + ky)·stride.
pub fn decode_stride(
    heads: &Heads,
    stride: u32,
    in_w: u32,
    in_h: u32,
    threshold: f32,
    out: &mut Vec<Detection>,
) -> Result<()> {
    let cols = (in_w / stride) as usize;
    let rows = (in_h / stride) as usize;
    let n = cols * rows;
    if heads.cls.len() != n
        || heads.obj.len() != n
        || heads.bbox.len() != 4 * n
        || heads.kps.len() != 10 * n
    {
        bail!(
            "YuNet stride {stride}: head sizes cls {} obj {} bbox {} kps {} do not match {n} cells \
             of a {in_w}×{in_h} input",
            heads.cls.len(),
            heads.obj.len(),
            heads.bbox.len(),
            heads.kps.len()
        );
    }
    let s = stride as f32;
    for r in 0..rows {
        for c in 0..cols {
            let i = r * cols + c;
            let score = (heads.cls[i].clamp(0.0, 1.0) * heads.obj[i].clamp(0.0, 1.0)).sqrt();
            if score < threshold {
                continue;
            }
            let b = &heads.bbox[4 * i..4 * i + 4];
            let cx = (c as f32 + b[0]) * s;
            let cy = (r as f32 + b[1]) * s;
            let w = b[2].exp() * s;
            let h = b[3].exp() * s;
            let k = &heads.kps[10 * i..10 * i + 10];
            let mut kps = [[0.0; 2]; 5];
            for (j, p) in kps.iter_mut().enumerate() {
                *p = [(k[2 * j] + c as f32) * s, (k[2 * j + 1] + r as f32) * s];
            }
            out.push(Detection {
                bbox: [cx - w / 2.0, cy - h / 2.0, w, h],
                score,
                kps,
            });
        }
    }
    Ok(())
}

/// Intersection over union of two x, y, w, h boxes.
pub fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let x0 = a[0].max(b[0]);
    let y0 = a[1].max(b[1]);
    let x1 = (a[0] + a[2]).min(b[0] + b[2]);
    let y1 = (a[1] + a[3]).min(b[1] + b[3]);
    let inter = (x1 - x0).max(0.0) * (y1 - y0).max(0.0);
    let union = a[2] * a[3] + b[2] * b[3] - inter;
    if union > 0.0 { inter / union } else { 0.0 }
}

/// Greedy non-maximum suppression, best score first.
pub fn nms(mut dets: Vec<Detection>, iou_threshold: f32) -> Vec<Detection> {
    dets.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut keep: Vec<Detection> = Vec::new();
    for d in dets {
        if keep.iter().all(|k| iou(&k.bbox, &d.bbox) <= iou_threshold) {
            keep.push(d);
        }
    }
    keep
}
