//! The square face crop DAWN animates, and the tensors made from it (`src_img`, `face_mask`).
//!
//! Framing rule (docs/portrait.md §4; inferred by registering `tests/data/*_256.png` against
//! their full images, which were cropped around YuNet detections): side = 2 × max(box w, box h); centre =
//! the mean of YuNet's 5 landmarks (eyes, nose tip, mouth corners), raised by [`CROP_RAISE`] ×
//! side for head room. When the square crosses the image border it is first moved back inside
//! (at most [`MAX_SHIFT`] × side, so the face stays near the centre), and whatever still lies
//! outside is filled by replicating the border pixels.
//!
//! On the two reference portraits this reproduces the shipped crops to within 1 px (astronaut
//! 512×512: x 108, y 0, side 227; grace hopper 512×600: x 54, y 0, side 425). Both shipped crops
//! touch the top border, so the vertical raise is only bounded by them (≥ 0.05 × side); 0.06
//! puts the eyes at about 47 % of the crop height for a face well inside the photo.

use image::RgbImage;
use image::imageops::FilterType;

use super::resample::{self, Pad, crop_padded};

/// Crop side as a multiple of the face box's larger dimension.
pub const CROP_SCALE: f32 = 2.0;
/// The crop centre sits this fraction of the side above the landmarks' mean (head room).
pub const CROP_RAISE: f32 = 0.06;
/// At most this fraction of the side is used to move a crop back inside the image.
pub const MAX_SHIFT: f32 = 0.15;

/// A square crop: x, y of the top-left corner and the side, in whole pixels of the image it
/// was computed for. It may extend past the image border.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Square {
    pub x: i64,
    pub y: i64,
    pub side: u32,
}

impl Square {
    /// As `[x, y, side]` floats divided by `scale` (working pixels → original pixels).
    pub fn to_source(self, scale: f32) -> [f32; 3] {
        [
            self.x as f32 / scale,
            self.y as f32 / scale,
            self.side as f32 / scale,
        ]
    }
}

/// The crop for a face box `[x, y, w, h]` whose 5 YuNet landmarks average to `centre`, in an
/// image of `size` (width, height).
pub fn crop_for_face(bbox: [f32; 4], centre: [f32; 2], size: (u32, u32)) -> Square {
    let side = (CROP_SCALE * bbox[2].max(bbox[3])).round().max(1.0);
    let cx = centre[0];
    let cy = centre[1] - CROP_RAISE * side;
    let x0 = nudge_inside(cx - side / 2.0, side, size.0 as f32);
    let y0 = nudge_inside(cy - side / 2.0, side, size.1 as f32);
    Square {
        x: x0.round() as i64,
        y: y0.round() as i64,
        side: side as u32,
    }
}

/// The centred square of the image (side = the shorter dimension): for images that are already
/// face crops, or when no face was found.
pub fn centre_square(size: (u32, u32)) -> Square {
    let side = size.0.min(size.1).max(1);
    Square {
        x: i64::from((size.0.saturating_sub(side)) / 2),
        y: i64::from((size.1.saturating_sub(side)) / 2),
        side,
    }
}

/// Moves the start `a` of a segment of length `len` towards [0, limit] by at most
/// `MAX_SHIFT · len`.
fn nudge_inside(a: f32, len: f32, limit: f32) -> f32 {
    let max = MAX_SHIFT * len;
    if len >= limit {
        // Cannot fit: centre the overflow as much as the shift allows.
        let ideal = (limit - len) / 2.0;
        return a + (ideal - a).clamp(-max, max);
    }
    if a < 0.0 {
        a + (-a).min(max)
    } else if a + len > limit {
        a - (a + len - limit).min(max)
    } else {
        a
    }
}

/// Cuts `sq` out of `img` (edge padding outside) and resizes it to `s`×`s` with a triangle
/// filter (PIL-style bilinear: it averages when shrinking, so no aliasing).
pub fn extract(img: &RgbImage, sq: Square, s: u32) -> RgbImage {
    let cut = crop_padded(img, sq.x, sq.y, sq.side, sq.side, Pad::Edge);
    resample::resize(cut, s, s, FilterType::Triangle)
}

/// `[3, S, S]` planar RGB in [0, 1] (DAWN's `src_img` without the batch axis).
pub fn planar_unit(img: &RgbImage) -> Vec<f32> {
    let plane = (img.width() * img.height()) as usize;
    let mut out = vec![0.0f32; 3 * plane];
    for (i, px) in img.as_raw().chunks_exact(3).enumerate() {
        out[i] = f32::from(px[0]) / 255.0;
        out[plane + i] = f32::from(px[1]) / 255.0;
        out[2 * plane + i] = f32::from(px[2]) / 255.0;
    }
    out
}

/// DAWN's `generate_bbox_mask` with the H/W swap fixed: `hull` = `[x_min, y_min, x_max,
/// y_max]` in crop pixels scaled to `s` (any real numbers); the bounds are truncated to whole
/// pixels, the right/bottom bound is extended by one as in the reference, and everything is
/// clipped to the `s`×`s` grid. Returns `[s, s]` row-major, 1 inside, 0 outside.
pub fn box_mask(hull: [f32; 4], s: u32) -> Vec<f32> {
    let n = s as usize;
    let mut mask = vec![0.0f32; n * n];
    if n == 0 {
        return mask;
    }
    let last = n as i64 - 1;
    let c0 = (hull[0].floor() as i64).clamp(0, last + 1);
    let r0 = (hull[1].floor() as i64).clamp(0, last + 1);
    let c1 = (hull[2].floor() as i64 + 1).clamp(-1, last);
    let r1 = (hull[3].floor() as i64 + 1).clamp(-1, last);
    if c0 > c1 || r0 > r1 {
        return mask;
    }
    for r in r0..=r1 {
        let row = &mut mask[r as usize * n..(r as usize + 1) * n];
        row[c0 as usize..=c1 as usize].fill(1.0);
    }
    mask
}

/// The landmarks' bounding box `[x_min, y_min, x_max, y_max]` mapped into an `s`-pixel crop.
pub fn hull_in_crop(landmarks: &[[f32; 2]], crop: [f32; 3], s: u32) -> [f32; 4] {
    let k = s as f32 / crop[2];
    let mut h = [f32::MAX, f32::MAX, f32::MIN, f32::MIN];
    for p in landmarks {
        let x = (p[0] - crop[0]) * k;
        let y = (p[1] - crop[1]) * k;
        h[0] = h[0].min(x);
        h[1] = h[1].min(y);
        h[2] = h[2].max(x);
        h[3] = h[3].max(y);
    }
    h
}

/// The mask used when there are no landmarks: the central half of the crop. This is what
/// DAWN's fallback box row `[64, 64, 192, 192, 256, 256]` was evidently meant to be; read in
/// the field order DAWN's code uses (`[x_min, x_max, y_min, y_max, H, W]`) that row is a point,
/// and upstream's no-face mask is 2×2 pixels (docs/fidelity.md).
pub fn default_hull(s: u32) -> [f32; 4] {
    let q = s as f32 / 4.0;
    // The mask's +1 on the far bounds makes this exactly [S/4, 3S/4).
    [q, q, 3.0 * q - 2.0, 3.0 * q - 2.0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_framings() {
        // YuNet boxes and landmark means (native input size) on the test photos give exactly
        // the face crops in tests/data.
        let a = crop_for_face([178.17, 62.91, 89.90, 113.33], [221.18, 123.08], (512, 512));
        assert_eq!(
            a,
            Square {
                x: 108,
                y: 0,
                side: 227
            }
        );
        let g = crop_for_face(
            [183.04, 120.34, 170.14, 212.69],
            [266.45, 233.28],
            (512, 600),
        );
        assert_eq!(
            g,
            Square {
                x: 54,
                y: 0,
                side: 425
            }
        );
    }

    #[test]
    fn shift_is_bounded() {
        // A face at the very top-left: the crop moves in by at most 15 % of its side.
        let sq = crop_for_face([0.0, 0.0, 50.0, 50.0], [25.0, 26.0], (1000, 1000));
        assert_eq!(sq.side, 100);
        // x: 25 − 50 = −25, moved by 15; y: 26 − 6 − 50 = −30, moved by 15.
        assert_eq!((sq.x, sq.y), (-10, -15));
        // Well inside: untouched.
        let mid = crop_for_face([400.0, 400.0, 50.0, 50.0], [425.0, 426.0], (1000, 1000));
        assert_eq!((mid.x, mid.y), (375, 370));
        // Too big for the image: centred as far as allowed.
        let big = crop_for_face([0.0, 0.0, 100.0, 100.0], [50.0, 62.0], (100, 100));
        assert_eq!(big.side, 200);
        assert_eq!((big.x, big.y), (-50, -50));
    }

    #[test]
    fn mask_bounds() {
        let m = box_mask([2.5, 1.0, 4.2, 2.0], 8);
        let on: Vec<(usize, usize)> = (0..64)
            .filter(|i| m[*i] == 1.0)
            .map(|i| (i / 8, i % 8))
            .collect();
        // rows 1..=3, cols 2..=5
        assert_eq!(on.len(), 3 * 4);
        assert!(
            on.iter()
                .all(|&(r, c)| (1..=3).contains(&r) && (2..=5).contains(&c))
        );
        assert!(
            box_mask([10.0, 10.0, 20.0, 20.0], 8)
                .iter()
                .all(|v| *v == 0.0)
        );
        assert_eq!(
            box_mask([-5.0, -5.0, 20.0, 20.0], 8).iter().sum::<f32>(),
            64.0
        );
    }
}
