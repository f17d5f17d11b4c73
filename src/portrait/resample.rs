//! Resampling image regions: cut-outs that may extend past the border (padded), and resizing.

use image::imageops::FilterType;
use image::{DynamicImage, RgbImage};

/// Resizes with `filter`. Goes through `DynamicImage`, whose (non-generic) resize code is
/// compiled with the `image` crate's optimisation level even in debug builds of this crate.
pub fn resize(img: RgbImage, width: u32, height: u32, filter: FilterType) -> RgbImage {
    if img.dimensions() == (width, height) {
        return img;
    }
    DynamicImage::ImageRgb8(img)
        .resize_exact(width, height, filter)
        .into_rgb8()
}

/// As [`resize`], but reductions by 2× or more on both axes use the area average
/// (`thumbnail_exact`: each source pixel counted once; alias-free and several times faster
/// than a wide triangle filter, at the cost of sub-pixel jitter). For detector input and
/// display, not for the networks' precise inputs.
pub fn shrink_fast(img: RgbImage, width: u32, height: u32, filter: FilterType) -> RgbImage {
    let (w, h) = img.dimensions();
    if w >= 2 * width && h >= 2 * height {
        DynamicImage::ImageRgb8(img)
            .thumbnail_exact(width, height)
            .into_rgb8()
    } else {
        resize(img, width, height, filter)
    }
}

/// What fills the part of a rectangle that lies outside the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pad {
    /// Black (3DDFA's `crop_img`).
    Zero,
    /// The nearest border pixel (replicated edge: no black bars for the face model to animate).
    Edge,
}

/// Copies the `w`×`h` rectangle at integer position (`x0`, `y0`) out of `img`; any part outside
/// the image is filled according to `pad`. Rows are copied with `copy_from_slice`, so this is
/// fast even in unoptimised builds.
pub fn crop_padded(img: &RgbImage, x0: i64, y0: i64, w: u32, h: u32, pad: Pad) -> RgbImage {
    let mut out = RgbImage::new(w.max(1), h.max(1));
    let (iw, ih) = (i64::from(img.width()), i64::from(img.height()));
    if iw == 0 || ih == 0 {
        return out;
    }
    let (w, h) = (i64::from(out.width()), i64::from(out.height()));
    // Columns of the output that map inside the image.
    let cx0 = (-x0).clamp(0, w);
    let cx1 = (iw - x0).clamp(0, w);
    let src = img.as_raw();
    let dst_stride = (w * 3) as usize;
    let src_stride = (iw * 3) as usize;
    let dst = &mut *out;
    for oy in 0..h {
        let sy = y0 + oy;
        let row = &mut dst[oy as usize * dst_stride..(oy as usize + 1) * dst_stride];
        let inside_row = (0..ih).contains(&sy);
        if !inside_row && pad == Pad::Zero {
            continue; // already zero
        }
        let sy = sy.clamp(0, ih - 1) as usize;
        let srow = &src[sy * src_stride..(sy + 1) * src_stride];
        if cx0 < cx1 {
            let sx0 = (x0 + cx0) as usize;
            let n = (cx1 - cx0) as usize;
            row[cx0 as usize * 3..cx1 as usize * 3].copy_from_slice(&srow[sx0 * 3..(sx0 + n) * 3]);
        }
        if pad == Pad::Edge {
            // Output columns left of the image repeat column 0, right of it the last column.
            let first = [srow[0], srow[1], srow[2]];
            let l = src_stride - 3;
            let last = [srow[l], srow[l + 1], srow[l + 2]];
            for px in row[..cx0 as usize * 3].chunks_exact_mut(3) {
                px.copy_from_slice(&first);
            }
            for px in row[cx1.max(cx0) as usize * 3..].chunks_exact_mut(3) {
                px.copy_from_slice(&last);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp() -> RgbImage {
        RgbImage::from_fn(4, 3, |x, y| image::Rgb([x as u8 * 10, y as u8 * 10, 7]))
    }

    #[test]
    fn inside_is_a_plain_copy() {
        let c = crop_padded(&ramp(), 1, 1, 2, 2, Pad::Zero);
        assert_eq!(c.get_pixel(0, 0).0, [10, 10, 7]);
        assert_eq!(c.get_pixel(1, 1).0, [20, 20, 7]);
    }

    #[test]
    fn zero_and_edge_padding() {
        let z = crop_padded(&ramp(), -1, -1, 6, 5, Pad::Zero);
        assert_eq!(z.get_pixel(0, 0).0, [0, 0, 0]);
        assert_eq!(z.get_pixel(1, 1).0, [0, 0, 7]);
        assert_eq!(z.get_pixel(5, 4).0, [0, 0, 0]);
        let e = crop_padded(&ramp(), -1, -1, 6, 5, Pad::Edge);
        assert_eq!(e.get_pixel(0, 0).0, [0, 0, 7]);
        assert_eq!(e.get_pixel(5, 4).0, [30, 20, 7]);
        assert_eq!(e.get_pixel(5, 0).0, [30, 0, 7]);
        // Entirely outside, to the right: the last column everywhere.
        let far = crop_padded(&ramp(), 10, 0, 2, 3, Pad::Edge);
        assert_eq!(far.get_pixel(0, 2).0, [30, 20, 7]);
        let far_left = crop_padded(&ramp(), -10, 0, 2, 3, Pad::Edge);
        assert_eq!(far_left.get_pixel(1, 1).0, [0, 10, 7]);
    }
}
