//! Decoding a portrait file: format sniffing, decoder limits, EXIF orientation and an early
//! downscale of very large photos, so that an 8000×6000 phone picture costs one decode and
//! little memory afterwards.

use std::io::Cursor;
use std::path::Path;

use crate::engine::files;
use anyhow::{Context, Result, bail};
use image::{DynamicImage, ImageDecoder, ImageReader, Limits, RgbImage, metadata::Orientation};

/// Longest side, in pixels, of the working copy kept in memory. Larger photos are downscaled
/// (area average) right after decoding; every coordinate reported to the caller stays in the
/// pixels of the oriented original.
pub const MAX_WORKING_SIDE: u32 = 4096;

/// Largest width or height accepted from a file.
pub const MAX_DECODE_SIDE: u32 = 32_768;

/// Largest pixel count accepted from a file (about 100 megapixels, twice a 50 MP phone photo).
pub const MAX_DECODE_PIXELS: u64 = 100_000_000;

/// Most memory the decoder may allocate (the decoded image included).
pub const MAX_DECODE_ALLOC: u64 = 1 << 30;

/// Largest file accepted (it is read into memory before decoding).
pub const MAX_FILE_BYTES: u64 = 256 << 20;

/// An oriented, RGB8, possibly downscaled portrait.
#[derive(Debug, Clone)]
pub struct Decoded {
    /// The working copy (long side at most [`MAX_WORKING_SIDE`]).
    pub image: RgbImage,
    /// Size of the oriented original, before any downscale.
    pub source_size: (u32, u32),
    /// Working pixels per original pixel (1.0 unless downscaled).
    pub scale: f32,
}

/// Decodes `path` (PNG, JPEG or anything else `image` was built with), applies the EXIF
/// orientation and downscales very large images.
///
/// Errors name the file and say what is wrong (missing, not a regular file, unreadable, unknown
/// format, corrupt, truncated, too large).
pub fn decode_file(path: &Path) -> Result<Decoded> {
    // Only a regular file, read up to the limit (a FIFO or /dev/zero would block or never end).
    let bytes = files::read(path, "portrait image", MAX_FILE_BYTES)?;
    decode_bytes(&bytes, &path.display().to_string())
}

/// Decodes an encoded image held in memory; `name` is used in error messages (a file name or
/// a description such as "the image buffer").
pub fn decode_bytes(bytes: &[u8], name: &str) -> Result<Decoded> {
    let shown = name;
    if bytes.is_empty() {
        bail!("portrait image {shown} is empty (0 bytes)");
    }
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .with_context(|| format!("cannot read portrait image {shown}"))?;
    match reader.format() {
        None => bail!(
            "portrait image {shown} is not a recognised image file (supported: PNG, JPEG); \
             the file may be corrupt or of another type"
        ),
        // The JPEG decoder conceals missing data (grey blocks), so check the structure here.
        Some(image::ImageFormat::Jpeg) => {
            if let Err(what) = check_jpeg_structure(bytes) {
                bail!("portrait image {shown} is truncated or corrupt: {what}");
            }
        }
        Some(_) => {}
    }
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_DECODE_SIDE);
    limits.max_image_height = Some(MAX_DECODE_SIDE);
    limits.max_alloc = Some(MAX_DECODE_ALLOC);
    reader.limits(limits);
    let format = reader.format();
    let mut decoder = reader
        .into_decoder()
        .map_err(|e| describe(shown, format, e))?;
    let (w, h) = decoder.dimensions();
    if u64::from(w) * u64::from(h) > MAX_DECODE_PIXELS {
        bail!(
            "portrait image {shown} is {w}×{h} pixels, more than the {} megapixels accepted; \
             downscale it first",
            MAX_DECODE_PIXELS / 1_000_000
        );
    }
    // A broken EXIF block must not make a good picture unusable: treat it as "no rotation".
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let img = DynamicImage::from_decoder(decoder).map_err(|e| describe(shown, format, e))?;
    Ok(prepare(img, orientation))
}

/// Prepares an already decoded image (no EXIF information: the caller orients it).
pub fn decode_image(img: DynamicImage) -> Decoded {
    prepare(img, Orientation::NoTransforms)
}

/// Walks the JPEG marker segments from SOI to EOI (skipping segment payloads by their length
/// and entropy-coded data up to the next marker). Anything after EOI, such as an appended
/// motion-photo video, is ignored.
pub fn check_jpeg_structure(b: &[u8]) -> std::result::Result<(), String> {
    if b.len() < 4 || b[0] != 0xFF || b[1] != 0xD8 {
        return Err("no JPEG start-of-image marker".into());
    }
    let mut i = 2;
    let mut in_scan = false;
    loop {
        if in_scan {
            // Entropy-coded data: 0xFF is followed by 0x00 (stuffing) or RST0..7 inside it.
            match b[i..].iter().position(|&x| x == 0xFF) {
                None => return Err("the image data ends without an end-of-image marker".into()),
                Some(off) => i += off,
            }
            match b.get(i + 1) {
                None => return Err("the image data ends without an end-of-image marker".into()),
                Some(0x00) | Some(0xD0..=0xD7) | Some(0xFF) => {
                    i += 1;
                    continue;
                }
                Some(_) => in_scan = false,
            }
        }
        // Markers may be preceded by fill bytes 0xFF.
        while b.get(i) == Some(&0xFF) && b.get(i + 1) == Some(&0xFF) {
            i += 1;
        }
        let (Some(&0xFF), Some(&m)) = (b.get(i), b.get(i + 1)) else {
            return Err(format!(
                "the data ends early or is damaged (no marker at byte {i} of {})",
                b.len()
            ));
        };
        i += 2;
        match m {
            0xD9 => return Ok(()),
            0x01 | 0xD0..=0xD7 => continue,
            _ => {
                let len = match (b.get(i), b.get(i + 1)) {
                    (Some(&h), Some(&l)) => usize::from(h) << 8 | usize::from(l),
                    _ => return Err("the data ends inside a marker segment".into()),
                };
                if len < 2 || i + len > b.len() {
                    return Err(format!(
                        "the data ends inside a marker segment (0xFF{m:02X} at byte {})",
                        i - 2
                    ));
                }
                i += len;
                if m == 0xDA {
                    in_scan = true;
                }
            }
        }
    }
}

fn describe(
    shown: &str,
    format: Option<image::ImageFormat>,
    e: image::ImageError,
) -> anyhow::Error {
    use image::ImageError as E;
    let kind = format.map(|f| format!("{f:?}")).unwrap_or_default();
    let what = match &e {
        E::Decoding(_) => {
            let text = e.to_string().to_lowercase();
            if text.contains("eof")
                || text.contains("end of")
                || text.contains("truncat")
                || text.contains("unexpected")
                || text.contains("no more")
                || text.contains("exhausted")
            {
                format!("is truncated or corrupt ({kind} data ends early or is damaged: {e})")
            } else {
                format!("is corrupt ({kind} decoding failed: {e})")
            }
        }
        E::Limits(_) => format!("is too large to decode safely ({e}); downscale it first"),
        E::Unsupported(_) => format!("uses an unsupported image format or feature ({e})"),
        E::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            format!("is truncated ({kind} data ends early: {e})")
        }
        E::IoError(_) => format!("could not be read ({e})"),
        E::Encoding(_) | E::Parameter(_) => format!("could not be decoded ({e})"),
    };
    anyhow::anyhow!("portrait image {shown} {what}")
}

/// Downscale first (cheaper on the big image), then convert and orient.
fn prepare(img: DynamicImage, orientation: Orientation) -> Decoded {
    let (w, h) = (img.width(), img.height());
    let swaps = matches!(
        orientation,
        Orientation::Rotate90
            | Orientation::Rotate270
            | Orientation::Rotate90FlipH
            | Orientation::Rotate270FlipH
    );
    let source_size = if swaps { (h, w) } else { (w, h) };
    let long = w.max(h);
    let (img, scale) = if long > MAX_WORKING_SIDE {
        let s = MAX_WORKING_SIDE as f32 / long as f32;
        let nw = ((w as f32 * s).round() as u32).max(1);
        let nh = ((h as f32 * s).round() as u32).max(1);
        // `thumbnail_exact` averages whole source pixels (area filter): fast and alias-free.
        let small = img.thumbnail_exact(nw, nh);
        (small, nw as f32 / w as f32)
    } else {
        (img, 1.0)
    };
    let mut rgb = DynamicImage::ImageRgb8(to_rgb_over_white(img));
    rgb.apply_orientation(orientation);
    let image = match rgb {
        DynamicImage::ImageRgb8(i) => i,
        other => other.to_rgb8(),
    };
    Decoded {
        image,
        source_size,
        scale,
    }
}

/// RGB8, with any transparency composited over white (cut-out portraits then look natural).
fn to_rgb_over_white(img: DynamicImage) -> RgbImage {
    if !img.color().has_alpha() {
        return match img {
            DynamicImage::ImageRgb8(i) => i,
            other => other.to_rgb8(),
        };
    }
    let rgba = img.to_rgba8();
    let (w, h) = rgba.dimensions();
    let mut out = RgbImage::new(w, h);
    for (o, p) in out.pixels_mut().zip(rgba.pixels()) {
        let a = u32::from(p[3]);
        for c in 0..3 {
            o[c] = ((u32::from(p[c]) * a + 255 * (255 - a) + 127) / 255) as u8;
        }
    }
    out
}
