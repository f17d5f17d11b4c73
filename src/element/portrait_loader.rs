//! From the element's settings to an animated face: analyse the portrait (decode, detect,
//! crop, init pose and eyes), encode it with the model pack, build the compositor for
//! full-portrait output, and describe what was found in a `dawn-portrait` message.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};

use super::settings::{OutputMode, Settings};
use super::state::{Loaded, Shown};
use crate::engine::{Avatar, PortraitInput, Runtime};
use crate::portrait::{self, Compositor, FaceModelSource, FaceModels, FaceSelect, PortraitOptions};

/// An encoded portrait plus how its frames are shown.
#[derive(Clone)]
pub struct Face {
    pub avatar: Arc<Avatar>,
    /// Full-portrait output: pastes generated faces back into the photo.
    pub compositor: Option<Arc<Compositor>>,
}

pub struct LoadedPortrait {
    pub face: Face,
    /// The face crop as RGB8 at the pack resolution (with the compositor for full-portrait
    /// output), shown before the first generated frame.
    pub still: Shown,
    /// The `dawn-portrait` element message body.
    pub report: gst::Structure,
    pub warnings: Vec<String>,
}

/// The face models the settings ask for (see [`FaceModelSource::locate`]): the `face-models`
/// property, else `<model-path>/face`, else `$DAWN_FACE_MODELS`, else the built-in models.
pub fn face_models_source(settings: &Settings) -> FaceModelSource {
    FaceModelSource::locate(
        settings.face_models.as_deref(),
        settings.model_path.as_deref(),
    )
}

/// Loads the face models the settings ask for.
pub fn load_face_models(runtime: &Runtime, settings: &Settings) -> Result<Arc<FaceModels>> {
    Ok(Arc::new(FaceModels::open(
        runtime,
        &face_models_source(settings),
    )?))
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

/// Analyses and encodes the portrait at `path`. Full-portrait output is composed at the size
/// fixed when the element loaded (`loaded.output_size`), so a new portrait of another shape
/// keeps the negotiated caps.
pub fn load(loaded: &Loaded, settings: &Settings, path: &Path) -> Result<LoadedPortrait> {
    let engine = &*loaded.engine;
    let models = Some(&*loaded.face_models);
    let fixed_size = loaded.output_size;
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
        .field(
            "face-models",
            models.map_or_else(|| "none".to_string(), |m| m.source().to_string()),
        )
        .field("yaw", p.init_pose[0] as f64)
        .field("pitch", p.init_pose[1] as f64)
        .field("roll", p.init_pose[2] as f64)
        .field("eye-left", p.init_eye[0] as f64)
        .field("eye-right", p.init_eye[1] as f64)
        .field("pose-source", format!("{:?}", p.pose_source).to_lowercase())
        .field("warnings", p.warnings.join("; "))
        .build();
    let face = Face {
        avatar: Arc::new(avatar),
        compositor,
    };
    Ok(LoadedPortrait {
        still: Shown {
            rgb: Arc::new(p.crop_image.into_raw()),
            compositor: face.compositor.clone(),
        },
        face,
        report,
        warnings: p.warnings,
    })
}
