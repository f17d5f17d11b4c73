//! From the element's settings to an animated face: analyse the portrait (decode, detect,
//! crop, init pose and eyes), encode it with the model pack, build the compositor for
//! full-portrait output, and describe what was found in a `dawn-portrait` message.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};

use super::settings::{OutputMode, Settings};
use crate::engine::{Avatar, Engine, PortraitInput, Runtime};
use crate::portrait::{self, Compositor, FaceModels, FaceSelect, PortraitOptions};

/// The environment variable naming a default face-model directory.
pub const FACE_MODELS_ENV: &str = "DAWN_FACE_MODELS";

/// An encoded portrait plus how its frames are shown.
#[derive(Clone)]
pub struct Face {
    pub avatar: Arc<Avatar>,
    /// Full-portrait output: pastes generated faces back into the photo.
    pub compositor: Option<Arc<Compositor>>,
}

pub struct LoadedPortrait {
    pub face: Face,
    /// The face crop as RGB8 at the pack resolution, shown before the first generated frame.
    pub still: Arc<Vec<u8>>,
    /// The `dawn-portrait` element message body.
    pub report: gst::Structure,
    pub warnings: Vec<String>,
}

/// Where the face models are: the `face-models` property, else `<model-path>/face`, else
/// `$DAWN_FACE_MODELS`. `None` when none exists (detection is then off, with a warning).
pub fn face_models_dir(settings: &Settings) -> Option<PathBuf> {
    if let Some(dir) = &settings.face_models {
        return Some(dir.clone());
    }
    let in_pack = settings.model_path.as_ref().map(|p| p.join("face"));
    in_pack
        .filter(|d| d.is_dir())
        .or_else(|| std::env::var_os(FACE_MODELS_ENV).map(PathBuf::from))
}

/// Loads the face models, if any are configured.
pub fn load_face_models(runtime: &Runtime, settings: &Settings) -> Result<Option<Arc<FaceModels>>> {
    match face_models_dir(settings) {
        Some(dir) => Ok(Some(Arc::new(FaceModels::load(runtime, &dir)?))),
        None => Ok(None),
    }
}

/// The full-portrait output size: the property values, or the photo's size scaled to at most
/// 1280 pixels on its long side (even sizes, which YUV formats need).
pub fn output_size(settings: &Settings, source: (u32, u32)) -> (u32, u32) {
    if settings.output_width > 0 && settings.output_height > 0 {
        return (settings.output_width, settings.output_height);
    }
    let (w, h) = (source.0.max(1) as f64, source.1.max(1) as f64);
    let k = (1280.0 / w.max(h)).min(1.0);
    let even = |v: f64| (((v * k).round() as u32) / 2 * 2).max(2);
    (even(w), even(h))
}

/// Analyses and encodes the portrait at `path`. `fixed_size` keeps the output size of a
/// running stream when the portrait changes (caps stay as negotiated).
pub fn load(
    engine: &Engine,
    models: Option<&FaceModels>,
    settings: &Settings,
    path: &Path,
    fixed_size: Option<(u32, u32)>,
) -> Result<LoadedPortrait> {
    let defaults = &engine.pack.manifest.defaults;
    let opts = PortraitOptions {
        resolution: engine.resolution() as u32,
        select: if !settings.detect_face {
            FaceSelect::Off
        } else if settings.face_index >= 0 {
            FaceSelect::Index(settings.face_index as usize)
        } else {
            FaceSelect::Largest
        },
        strict: settings.strict,
        pose_override: settings.init_pose,
        eye_override: settings.init_eyes,
        default_pose: defaults
            .init_pose
            .clone()
            .try_into()
            .unwrap_or(portrait::DAWN_DEFAULT_POSE),
        default_eye: defaults
            .init_eye
            .clone()
            .try_into()
            .unwrap_or(portrait::DAWN_DEFAULT_EYE),
    };
    let mut p = portrait::analyse_file(path, models, &opts)?;
    if models.is_none() && settings.detect_face {
        p.warnings.push(format!(
            "no face models configured: {} is centre-cropped and DAWN's default pose is used; \
             set face-models to a directory with the YuNet and 3DDFA models (or ${FACE_MODELS_ENV})",
            path.display()
        ));
    }
    let avatar = engine
        .avatar(PortraitInput {
            src_img: std::mem::take(&mut p.src_img),
            face_mask: std::mem::take(&mut p.face_mask),
            init_pose: p.init_pose,
            init_eye: p.init_eye,
        })
        .with_context(|| format!("encoding portrait {}", path.display()))?;
    let compositor = (settings.output == OutputMode::Portrait).then(|| {
        let (w, h) = fixed_size.unwrap_or_else(|| output_size(settings, p.source_size));
        Arc::new(Compositor::new(&p, w, h, settings.feather as f32))
    });
    let [fx, fy, fw, fh] = p.face_box.unwrap_or([0.0; 4]);
    let report = gst::Structure::builder("dawn-portrait")
        .field("image", path.display().to_string())
        .field("detected", p.detected)
        .field("face-x", fx.round() as i32)
        .field("face-y", fy.round() as i32)
        .field("face-width", fw.round() as i32)
        .field("face-height", fh.round() as i32)
        .field("faces", p.faces.len() as u32)
        .field("yaw", p.init_pose[0] as f64)
        .field("pitch", p.init_pose[1] as f64)
        .field("roll", p.init_pose[2] as f64)
        .field("eye-left", p.init_eye[0] as f64)
        .field("eye-right", p.init_eye[1] as f64)
        .field("pose-source", format!("{:?}", p.pose_source).to_lowercase())
        .field("warnings", p.warnings.join("; "))
        .build();
    Ok(LoadedPortrait {
        face: Face {
            avatar: Arc::new(avatar),
            compositor,
        },
        still: Arc::new(p.crop_image.into_raw()),
        report,
        warnings: p.warnings,
    })
}
