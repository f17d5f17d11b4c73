//! Pixel conversion: decoder floats to 8-bit RGB (the reference's truncation rule), and 8-bit
//! RGB into the raw video format negotiated downstream, written straight into the output
//! buffer's planes.

/// Raw video formats the element can emit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PixelFormat {
    Rgb,
    Bgr,
    Rgba,
    Bgra,
    Rgbx,
    Bgrx,
    Xrgb,
    Xbgr,
    Argb,
    Abgr,
    I420,
    Nv12,
    Yuy2,
}

impl PixelFormat {
    /// For packed RGB formats: bytes per pixel and the byte offsets of R, G, B, and of the
    /// alpha/padding byte if any.
    fn packed_layout(self) -> Option<(usize, [usize; 3], Option<usize>)> {
        use PixelFormat::*;
        Some(match self {
            Rgb => (3, [0, 1, 2], None),
            Bgr => (3, [2, 1, 0], None),
            Rgba | Rgbx => (4, [0, 1, 2], Some(3)),
            Bgra | Bgrx => (4, [2, 1, 0], Some(3)),
            Xrgb | Argb => (4, [1, 2, 3], Some(0)),
            Xbgr | Abgr => (4, [3, 2, 1], Some(0)),
            I420 | Nv12 | Yuy2 => return None,
        })
    }
}

/// `[3][S][S]` floats in [0, 1] to packed RGB8, `trunc(clamp(v, 0, 1) · 255)` as the
/// reference does.
pub fn float_to_rgb8(frame: &[f32], width: usize, height: usize, out: &mut [u8]) {
    let plane = width * height;
    let (r, rest) = frame.split_at(plane);
    let (g, b) = rest.split_at(plane);
    for (i, px) in out.chunks_exact_mut(3).take(plane).enumerate() {
        px[0] = (r[i].clamp(0.0, 1.0) * 255.0) as u8;
        px[1] = (g[i].clamp(0.0, 1.0) * 255.0) as u8;
        px[2] = (b[i].clamp(0.0, 1.0) * 255.0) as u8;
    }
}

/// BT.601 limited-range luma/chroma (what GStreamer assumes for SD-sized YUV caps).
#[inline]
fn yuv(r: i32, g: i32, b: i32) -> (u8, i32, i32) {
    let y = ((66 * r + 129 * g + 25 * b + 128) >> 8) + 16;
    let u = (-38 * r - 74 * g + 112 * b + 128) >> 8;
    let v = (112 * r - 94 * g - 18 * b + 128) >> 8;
    (y.clamp(0, 255) as u8, u, v)
}

#[inline]
fn chroma(sum: i32, n: i32) -> u8 {
    (sum / n + 128).clamp(0, 255) as u8
}

/// Writes packed RGB8 (`width·3` bytes per row) into `planes` with `strides` in `format`.
pub fn write_rgb8(
    rgb: &[u8],
    width: usize,
    height: usize,
    format: PixelFormat,
    planes: &mut [&mut [u8]],
    strides: &[usize],
) {
    let px = |x: usize, y: usize| {
        let i = (y * width + x) * 3;
        (rgb[i] as i32, rgb[i + 1] as i32, rgb[i + 2] as i32)
    };
    if let Some((bpp, [ro, go, bo], pad)) = format.packed_layout() {
        let stride = strides[0];
        for y in 0..height {
            let row = &mut planes[0][y * stride..][..width * bpp];
            let src = &rgb[y * width * 3..][..width * 3];
            for (d, s) in row.chunks_exact_mut(bpp).zip(src.chunks_exact(3)) {
                d[ro] = s[0];
                d[go] = s[1];
                d[bo] = s[2];
                if let Some(p) = pad {
                    d[p] = 255;
                }
            }
        }
        return;
    }
    match format {
        PixelFormat::I420 | PixelFormat::Nv12 => {
            for y in 0..height {
                let row = &mut planes[0][y * strides[0]..][..width];
                for (x, d) in row.iter_mut().enumerate() {
                    let (r, g, b) = px(x, y);
                    *d = yuv(r, g, b).0;
                }
            }
            // Chroma: average of each 2×2 block (edge blocks of odd sizes are smaller).
            let (cw, ch) = (width.div_ceil(2), height.div_ceil(2));
            for cy in 0..ch {
                for cx in 0..cw {
                    let (mut su, mut sv, mut n) = (0, 0, 0);
                    for y in (2 * cy)..(2 * cy + 2).min(height) {
                        for x in (2 * cx)..(2 * cx + 2).min(width) {
                            let (r, g, b) = px(x, y);
                            let (_, u, v) = yuv(r, g, b);
                            su += u;
                            sv += v;
                            n += 1;
                        }
                    }
                    let (u, v) = (chroma(su, n), chroma(sv, n));
                    if format == PixelFormat::I420 {
                        planes[1][cy * strides[1] + cx] = u;
                        planes[2][cy * strides[2] + cx] = v;
                    } else {
                        planes[1][cy * strides[1] + 2 * cx] = u;
                        planes[1][cy * strides[1] + 2 * cx + 1] = v;
                    }
                }
            }
        }
        PixelFormat::Yuy2 => {
            for y in 0..height {
                let row = &mut planes[0][y * strides[0]..];
                for cx in 0..width.div_ceil(2) {
                    let x0 = 2 * cx;
                    let x1 = (x0 + 1).min(width - 1);
                    let (r0, g0, b0) = px(x0, y);
                    let (r1, g1, b1) = px(x1, y);
                    let (y0, u0, v0) = yuv(r0, g0, b0);
                    let (y1, u1, v1) = yuv(r1, g1, b1);
                    row[4 * cx] = y0;
                    row[4 * cx + 1] = chroma(u0 + u1, 2);
                    row[4 * cx + 2] = y1;
                    row[4 * cx + 3] = chroma(v0 + v1, 2);
                }
            }
        }
        _ => unreachable!("packed formats handled above"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncates_like_the_reference() {
        let frame = [0.999f32, 1.5, -0.2, 0.5, 0.0, 1.0];
        // 2 pixels: planes r = [0.999, 1.5], g = [-0.2, 0.5], b = [0.0, 1.0]
        let mut out = [0u8; 6];
        float_to_rgb8(&frame, 2, 1, &mut out);
        assert_eq!(out, [254, 0, 0, 255, 127, 255]);
    }

    #[test]
    fn packed_and_yuv_layouts() {
        let rgb = [255u8, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255];
        let mut buf = [0u8; 16];
        write_rgb8(&rgb, 2, 2, PixelFormat::Bgrx, &mut [&mut buf[..]], &[8]);
        assert_eq!(&buf[..8], &[0, 0, 255, 255, 0, 255, 0, 255]);
        let mut y = vec![0u8; 4];
        let mut u = vec![0u8; 1];
        let mut v = vec![0u8; 1];
        write_rgb8(
            &rgb,
            2,
            2,
            PixelFormat::I420,
            &mut [&mut y, &mut u, &mut v],
            &[2, 1, 1],
        );
        // Red ≈ 81, green ≈ 144, blue ≈ 41, white = 235 in limited range.
        assert_eq!(y, vec![82, 144, 41, 235]);
        // The average colour of the block is a light grey-ish mix: chroma near neutral.
        assert!((u[0] as i32 - 128).abs() < 30 && (v[0] as i32 - 128).abs() < 30);
        let mut grey = vec![0u8; 4];
        let g = [128u8; 6];
        write_rgb8(&g, 2, 1, PixelFormat::Yuy2, &mut [&mut grey], &[4]);
        assert_eq!(grey, vec![126, 128, 126, 128]);
    }
}
