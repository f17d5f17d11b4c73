//! From the element's settings to an encoded portrait: decode the image, take the face crop,
//! encode it, and describe what was found in a `dawn-portrait` message.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};

use super::settings::Settings;
use crate::engine::{Avatar, Engine, PortraitInput};

pub struct LoadedPortrait {
    pub avatar: Arc<Avatar>,
    /// The crop as RGB8, shown before the first generated frame.
    pub still: Arc<Vec<u8>>,
    /// The `dawn-portrait` element message body.
    pub report: gst::Structure,
    pub warnings: Vec<String>,
}

/// Decodes `path` and takes a centred square crop resized to the pack resolution.
fn centre_crop(path: &Path, s: usize) -> Result<(Vec<f32>, (u32, u32))> {
    let img = image::ImageReader::open(path)
        .with_context(|| {
            format!(
                "cannot open portrait {}; fix: set image to an existing PNG or JPEG file",
                path.display()
            )
        })?
        .with_guessed_format()
        .with_context(|| format!("cannot read portrait {}", path.display()))?
        .decode()
        .with_context(|| {
            format!(
                "portrait {} is not a readable PNG or JPEG image (corrupt or truncated?)",
                path.display()
            )
        })?
        .to_rgb8();
    let (w, h) = img.dimensions();
    let side = w.min(h);
    let crop =
        image::imageops::crop_imm(&img, (w - side) / 2, (h - side) / 2, side, side).to_image();
    let resized = image::imageops::resize(
        &crop,
        s as u32,
        s as u32,
        image::imageops::FilterType::Triangle,
    );
    let mut planar = vec![0f32; 3 * s * s];
    for (i, px) in resized.pixels().enumerate() {
        for c in 0..3 {
            planar[c * s * s + i] = px[c] as f32 / 255.0;
        }
    }
    Ok((planar, (w, h)))
}

pub fn load(engine: &Engine, settings: &Settings, path: &Path) -> Result<LoadedPortrait> {
    let s = engine.resolution();
    let defaults = &engine.pack.manifest.defaults;
    let (src_img, (w, h)) = centre_crop(path, s)?;
    // Without face analysis the face box is the central 60 % of the crop.
    let mut face_mask = vec![0f32; s * s];
    let (lo, hi) = (s / 5, s - s / 5);
    for y in lo..hi {
        for x in lo..hi {
            face_mask[y * s + x] = 1.0;
        }
    }
    let mut init_pose = [0f32; 6];
    init_pose.copy_from_slice(&defaults.init_pose);
    let mut init_eye = [0f32; 2];
    init_eye.copy_from_slice(&defaults.init_eye);
    if let Some(p) = settings.init_pose {
        init_pose = p;
    }
    if let Some(e) = settings.init_eyes {
        init_eye = e;
    }
    let input = PortraitInput {
        src_img,
        face_mask,
        init_pose,
        init_eye,
    };
    let mut still = vec![0u8; s * s * 3];
    crate::engine::pixels::float_to_rgb8(&input.src_img, s, s, &mut still);
    let avatar = engine.avatar(input)?;
    let side = w.min(h) as i32;
    let report = gst::Structure::builder("dawn-portrait")
        .field("image", path.display().to_string())
        .field("detected", false)
        .field("face-x", (w as i32 - side) / 2)
        .field("face-y", (h as i32 - side) / 2)
        .field("face-width", side)
        .field("face-height", side)
        .field("yaw", init_pose[0] as f64)
        .field("pitch", init_pose[1] as f64)
        .field("roll", init_pose[2] as f64)
        .field("eye-left", init_eye[0] as f64)
        .field("eye-right", init_eye[1] as f64)
        .build();
    Ok(LoadedPortrait {
        avatar: Arc::new(avatar),
        still: Arc::new(still),
        report,
        warnings: Vec::new(),
    })
}
