//! Pasting a generated S×S face back into the full portrait, per frame.
//!
//! Everything that does not change between frames is computed once in [`Compositor::new`]:
//! the letterboxed background, and for the face square its per-column / per-row source
//! positions, bilinear weights and feather ramps (the alpha is separable: a product of a
//! horizontal and a vertical smooth ramp). [`Compositor::compose`] is then one copy of the
//! background plus a separable integer bilinear resample of the face (each face row is
//! resampled horizontally once, then output rows interpolate between two such rows) blended
//! over the face rectangle.

use image::RgbImage;
use image::imageops::FilterType;

use super::Portrait;
use super::resample;

/// Fixed-point scale of the bilinear weights (7 bits).
const WBITS: u32 = 7;
const WONE: u32 = 1 << WBITS;
/// Fixed-point scale of the alpha (8 bits; 256 = opaque).
const ABITS: u32 = 8;
const AONE: u32 = 1 << ABITS;

/// One output column (or row) of the face rectangle.
#[derive(Debug, Clone, Copy)]
struct Tap {
    /// Output column (row).
    out: u32,
    /// First face pixel index (the second is `i0 + 1`, clamped: see `i1`).
    i0: u32,
    i1: u32,
    /// Weight of `i1`, 0..=WONE.
    w: u32,
    /// Feather alpha, 0..=AONE.
    a: u32,
}

/// Pastes generated faces back into the portrait. Build once per portrait and output size.
#[derive(Debug, Clone)]
pub struct Compositor {
    width: u32,
    height: u32,
    face_side: u32,
    background: Vec<u8>,
    cols: Vec<Tap>,
    rows: Vec<Tap>,
    /// Index range (into `cols`) of the columns with alpha = 1, if any.
    opaque_cols: Option<(usize, usize)>,
    /// Column alphas repeated for the 3 channels (flat, for vectorised blending).
    col_alpha: Vec<u16>,
}

impl Compositor {
    /// The output is the whole portrait scaled to `out_width`×`out_height`, aspect kept,
    /// centred with black bars where the aspect ratios differ. The face square (`portrait.crop`)
    /// is blended in with a smooth edge `feather` × the square's side wide (0 = hard edge;
    /// clamped to 0..=0.5; 0.1 hides the seam well).
    pub fn new(portrait: &Portrait, out_width: u32, out_height: u32, feather: f32) -> Self {
        let (sw, sh) = portrait.source_size;
        let s = portrait.resolution;
        let mut background = vec![0u8; out_width as usize * out_height as usize * 3];
        let mut cols = Vec::new();
        let mut rows = Vec::new();
        if out_width == 0 || out_height == 0 || sw == 0 || sh == 0 {
            return Self {
                width: out_width,
                height: out_height,
                face_side: s,
                background,
                cols,
                rows,
                opaque_cols: None,
                col_alpha: Vec::new(),
            };
        }
        // Output pixels per original pixel, fitted.
        let k = (out_width as f64 / sw as f64).min(out_height as f64 / sh as f64);
        let fit_w = ((sw as f64 * k).round() as u32).clamp(1, out_width);
        let fit_h = ((sh as f64 * k).round() as u32).clamp(1, out_height);
        let off_x = (out_width - fit_w) / 2;
        let off_y = (out_height - fit_h) / 2;

        let scaled: RgbImage = if portrait.source.dimensions() == (fit_w, fit_h) {
            portrait.source.clone()
        } else {
            let filter = if fit_w < portrait.source.width() {
                FilterType::Triangle
            } else {
                FilterType::CatmullRom
            };
            resample::shrink_fast(portrait.source.clone(), fit_w, fit_h, filter)
        };
        let stride = out_width as usize * 3;
        for (y, src_row) in scaled.as_raw().chunks_exact(fit_w as usize * 3).enumerate() {
            let start = (off_y as usize + y) * stride + off_x as usize * 3;
            background[start..start + src_row.len()].copy_from_slice(src_row);
        }

        // Actual scale of the fitted image along each axis (rounding may differ slightly).
        let kx = fit_w as f64 / sw as f64;
        let ky = fit_h as f64 / sh as f64;
        let feather = f64::from(feather.clamp(0.0, 0.5));
        let [cx, cy, side] = portrait.crop.map(f64::from);
        cols = taps(off_x, fit_w, kx, cx, side, s, feather);
        rows = taps(off_y, fit_h, ky, cy, side, s, feather);
        let o0 = cols.iter().position(|c| c.a == AONE);
        let o1 = cols.iter().rposition(|c| c.a == AONE);
        let opaque_cols = o0.zip(o1).map(|(a, b)| (a, b + 1));
        let col_alpha = cols.iter().flat_map(|c| [c.a as u16; 3]).collect();
        Self {
            width: out_width,
            height: out_height,
            face_side: s,
            background,
            cols,
            rows,
            opaque_cols,
            col_alpha,
        }
    }

    /// Output size.
    pub fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    /// The frame shown when no face is pasted (the letterboxed portrait), packed RGB8.
    pub fn background(&self) -> &[u8] {
        &self.background
    }

    /// Writes one output frame: `face_rgb` is the generated S×S face (packed RGB8), `out` the
    /// `out_width`×`out_height` packed RGB8 frame.
    ///
    /// # Panics
    /// If a buffer has the wrong length.
    pub fn compose(&self, face_rgb: &[u8], out: &mut [u8]) {
        assert_eq!(
            out.len(),
            self.background.len(),
            "output must be {}×{} RGB8",
            self.width,
            self.height
        );
        self.compose_strided(face_rgb, out, self.width as usize * 3);
    }

    /// As [`Compositor::compose`] for an output whose rows are `stride` bytes apart (e.g. a
    /// GStreamer RGB frame, whose rows are padded to a multiple of 4 bytes). Padding bytes are
    /// left untouched.
    ///
    /// # Panics
    /// If `face_rgb` is not S×S×3 bytes, `stride` is shorter than a row or `out` too short.
    pub fn compose_strided(&self, face_rgb: &[u8], out: &mut [u8], stride: usize) {
        let s = self.face_side as usize;
        assert_eq!(face_rgb.len(), s * s * 3, "face must be {s}×{s} RGB8");
        let row_bytes = self.width as usize * 3;
        assert!(
            stride >= row_bytes,
            "stride {stride} shorter than a row ({row_bytes})"
        );
        let h = self.height as usize;
        if h == 0 || row_bytes == 0 {
            return;
        }
        assert!(
            out.len() >= stride * (h - 1) + row_bytes,
            "output buffer too short for {}×{} RGB8 with stride {stride}",
            self.width,
            self.height
        );
        for (y, bg) in self.background.chunks_exact(row_bytes).enumerate() {
            out[y * stride..y * stride + row_bytes].copy_from_slice(bg);
        }
        let (Some(first), Some(last)) = (self.cols.first(), self.cols.last()) else {
            return;
        };
        let n = self.cols.len() * 3;
        let (x0, x1) = (first.out as usize * 3, last.out as usize * 3 + 3);
        debug_assert_eq!(x1 - x0, n, "face columns are contiguous");
        // Pass 1: the face rows the output needs, resampled to the output columns.
        let (fy0, fy1) = self.rows.iter().fold((usize::MAX, 0), |(lo, hi), r| {
            (lo.min(r.i0 as usize), hi.max(r.i1 as usize))
        });
        if fy0 > fy1 {
            return;
        }
        let mut resampled = vec![0u8; (fy1 - fy0 + 1) * n];
        for (fy, dst) in (fy0..=fy1).zip(resampled.chunks_exact_mut(n)) {
            let src = &face_rgb[fy * s * 3..(fy + 1) * s * 3];
            for (d, col) in dst.chunks_exact_mut(3).zip(&self.cols) {
                let (j0, j1) = (col.i0 as usize * 3, col.i1 as usize * 3);
                let (a, b) = (&src[j0..j0 + 3], &src[j1..j1 + 3]);
                let (w1, w0) = (col.w as u16, (WONE - col.w) as u16);
                for c in 0..3 {
                    d[c] = lerp(a[c], b[c], w0, w1);
                }
            }
        }
        // Pass 2: interpolate between two resampled rows and blend over the background. The
        // loops run over flat per-channel slices in 16-bit arithmetic, which the compiler
        // vectorises.
        let mut row_alpha = Vec::new();
        for row in &self.rows {
            let h0 = &resampled[(row.i0 as usize - fy0) * n..][..n];
            let h1 = &resampled[(row.i1 as usize - fy0) * n..][..n];
            let (w1, w0) = (row.w as u16, (WONE - row.w) as u16);
            let start = row.out as usize * stride;
            let dst = &mut out[start + x0..start + x1];
            match (row.a, self.opaque_cols) {
                (AONE, Some((o0, o1))) => {
                    let (o0, o1) = (o0 * 3, o1 * 3);
                    let ca = &self.col_alpha;
                    blend(&mut dst[..o0], &h0[..o0], &h1[..o0], &ca[..o0], w0, w1);
                    interpolate(&mut dst[o0..o1], &h0[o0..o1], &h1[o0..o1], w0, w1);
                    blend(&mut dst[o1..], &h0[o1..], &h1[o1..], &ca[o1..], w0, w1);
                }
                (AONE, None) => blend(dst, h0, h1, &self.col_alpha, w0, w1),
                (ra, _) => {
                    row_alpha.clear();
                    row_alpha.extend(
                        self.col_alpha
                            .iter()
                            .map(|&c| ((ra * u32::from(c)) >> ABITS) as u16),
                    );
                    blend(dst, h0, h1, &row_alpha, w0, w1);
                }
            }
        }
    }
}

/// Bilinear step in 16-bit fixed point: (a·w0 + b·w1) / WONE, rounded (w0 + w1 = WONE).
#[inline(always)]
fn lerp(a: u8, b: u8, w0: u16, w1: u16) -> u8 {
    ((u16::from(a) * w0 + u16::from(b) * w1 + (WONE as u16 >> 1)) >> WBITS) as u8
}

/// `dst` = the vertical interpolation of two horizontally resampled rows.
fn interpolate(dst: &mut [u8], h0: &[u8], h1: &[u8], w0: u16, w1: u16) {
    for ((o, &a), &b) in dst.iter_mut().zip(h0).zip(h1) {
        *o = lerp(a, b, w0, w1);
    }
}

/// As [`interpolate`], blended over `dst` with per-channel alpha `al` (0..=AONE).
fn blend(dst: &mut [u8], h0: &[u8], h1: &[u8], al: &[u16], w0: u16, w1: u16) {
    for (((o, &a), &b), &al) in dst.iter_mut().zip(h0).zip(h1).zip(al) {
        let f = u16::from(lerp(a, b, w0, w1));
        // ≤ 255·256 + 128: fits 16 bits.
        *o = ((u16::from(*o) * (AONE as u16 - al) + f * al + (AONE as u16 >> 1)) >> ABITS) as u8;
    }
}

/// The output columns (rows) covered by the face square, clipped to the fitted image.
fn taps(off: u32, fit: u32, k: f64, crop0: f64, side: f64, s: u32, feather: f64) -> Vec<Tap> {
    if side <= 0.0 || s == 0 {
        return Vec::new();
    }
    let lo = (off as f64 + crop0 * k).floor().max(off as f64) as u32;
    let hi = (off as f64 + (crop0 + side) * k)
        .ceil()
        .min((off + fit) as f64) as u32;
    let last = s - 1;
    let mut out = Vec::with_capacity(hi.saturating_sub(lo) as usize);
    for o in lo..hi {
        // Position of the output pixel centre in original pixels, then in face pixels.
        let u = (o as f64 + 0.5 - off as f64) / k;
        let t = (u - crop0) / side; // 0..1 across the square
        if !(0.0..1.0).contains(&t) {
            continue;
        }
        let f = t * s as f64 - 0.5;
        let fl = f.floor();
        let i0 = (fl.max(0.0) as u32).min(last);
        let i1 = ((fl + 1.0).max(0.0) as u32).min(last);
        let w = ((f - fl) * WONE as f64).round() as u32;
        let edge = t.min(1.0 - t);
        let a = if feather > 0.0 {
            let x = (edge / feather).clamp(0.0, 1.0);
            x * x * (3.0 - 2.0 * x)
        } else {
            1.0
        };
        out.push(Tap {
            out: o,
            i0,
            i1,
            w: w.min(WONE),
            a: (a * AONE as f64).round() as u32,
        });
    }
    out
}
