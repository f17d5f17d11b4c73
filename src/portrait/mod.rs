//! The portrait: from a user's photo to everything DAWN needs about it.
//!
//! [`analyse_file`] / [`analyse_bytes`] / [`analyse_image`] decode the photo (EXIF orientation
//! honoured, very large images downscaled early), find the face with YuNet, fit 3DDFA_V2 to it,
//! and produce:
//!
//! - the square face crop DAWN animates ([`Portrait::crop`], framed like the face crops in
//!   `tests/data`: see [`crop`]), resized to the pack resolution S as `src_img`
//!   (`[3, S, S]`, RGB in [0, 1]);
//! - `init_pose` `[yaw, pitch, roll, s, tx, ty]` and `init_eye` `[left, right]` in 3DDFA_V2's
//!   conventions (docs/portrait.md §3; the 68 sparse landmarks, not the dense mesh);
//! - `face_mask` (`[S, S]`): 1 inside the 68-landmark box mapped into the crop (docs/portrait.md
//!   §5, with upstream's H/W swap fixed), 0 elsewhere.
//!
//! When no face is found (or no face models are given) the values fall back to
//! [`PortraitOptions::default_pose`] / [`PortraitOptions::default_eye`] (the model pack's
//! defaults; DAWN's own values by default) with a warning, or fail in strict mode.
//! [`Compositor`] pastes generated faces back into the full portrait.
//!
//! Deliberate differences from the reference pipeline (`extract_init_states/`):
//! - YuNet replaces FaceBoxes as the detector (the 3DDFA ROI rule is unchanged).
//! - The 68 landmarks come from the 3DDFA graph's auxiliary `lm_aux` head (2-D), as the BFM
//!   basis is not shipped; the eye ratios therefore ignore depth. For the near-frontal
//!   portraits DAWN expects, the eyelid and eye-corner points have almost the same depth, so
//!   the ratios differ little from the 3-D ones.
//! - The 120×120 ROI is resized with a triangle filter (averaging when shrinking) rather than
//!   plain bilinear, so large photos do not alias.
//! - The portrait is cropped to a square around the face instead of being stretched to S×S
//!   (docs/portrait.md §4), and the mask uses the crop's own axes (no H/W swap).
//!
//! One concept per file: [`decode`] (file → oriented RGB), [`models`] (loading the ONNX face
//! models), [`detect`] (YuNet), [`tddfa`] (3DDFA_V2 ROI and regression), [`pose`] (pose and eye
//! formulas), [`crop`] (framing and the crop tensors), [`resample`] (padded cut-outs, resizing),
//! [`compose`] (pasting back).

pub mod compose;
pub mod crop;
pub mod decode;
pub mod detect;
pub mod models;
pub mod pose;
pub mod resample;
pub mod tddfa;

use std::path::Path;

use anyhow::{Result, bail};
use image::{DynamicImage, RgbImage};

pub use compose::Compositor;
pub use detect::Detection;
pub use models::{FaceModelSource, FaceModels};

/// DAWN's fallback init pose (PBNet's default in the upstream code; docs/portrait.md §7).
pub const DAWN_DEFAULT_POSE: [f32; 6] = [0.0, 0.0, 0.0, 4.79e-4, 56.5, 64.9];
/// DAWN's fallback eye-openness ratios (docs/portrait.md §7).
pub const DAWN_DEFAULT_EYE: [f32; 2] = [0.3, 0.3];

/// With [`FaceSelect::Off`], a face box smaller than this fraction of the image side draws a
/// warning (the image is probably not a face crop).
pub const OFF_MIN_FACE_FILL: f32 = 0.25;

/// Which face to animate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FaceSelect {
    /// The largest detected face.
    #[default]
    Largest,
    /// The i-th detected face, faces sorted by box area, largest first (0 = largest).
    Index(usize),
    /// The image is already a face crop: no detection; the crop is the whole image (its centred
    /// square if it is not square). With face models, 3DDFA_V2 still measures pose and eyes:
    /// a first pass uses the whole square as its ROI, a second pass the ROI of a face box
    /// derived from the first pass's landmarks (see [`tddfa::box_from_landmarks`]), so the
    /// values follow the same ROI convention as with detection. Without models, the pose and
    /// eyes come from the overrides or the defaults.
    Off,
}

/// How to analyse a portrait.
#[derive(Debug, Clone, PartialEq)]
pub struct PortraitOptions {
    /// S: side of `src_img` and `face_mask` (the model pack's resolution: 128 or 256; 64 for
    /// test packs). Must be in 8..=2048.
    pub resolution: u32,
    /// Which face to use.
    pub select: FaceSelect,
    /// Fail instead of falling back to defaults: when no face is found, when the requested
    /// face index does not exist, or when pose/eyes cannot be measured and are not overridden.
    pub strict: bool,
    /// Replaces the measured init pose.
    pub pose_override: Option<[f32; 6]>,
    /// Replaces the measured eye ratios.
    pub eye_override: Option<[f32; 2]>,
    /// Used when the pose cannot be measured (normally the model pack's `defaults.init_pose`).
    pub default_pose: [f32; 6],
    /// Used when the eyes cannot be measured (normally the model pack's `defaults.init_eye`).
    pub default_eye: [f32; 2],
}

impl Default for PortraitOptions {
    fn default() -> Self {
        Self {
            resolution: 128,
            select: FaceSelect::Largest,
            strict: false,
            pose_override: None,
            eye_override: None,
            default_pose: DAWN_DEFAULT_POSE,
            default_eye: DAWN_DEFAULT_EYE,
        }
    }
}

/// Where an init value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueSource {
    /// Measured on the face with 3DDFA_V2.
    Measured,
    /// From `pose_override` / `eye_override`.
    Override,
    /// From `default_pose` / `default_eye` (a warning says why).
    Default,
}

/// Everything DAWN needs about one portrait. Coordinates are in pixels of the oriented
/// original image (before any downscale), x right, y down.
#[derive(Debug, Clone)]
pub struct Portrait {
    /// The decoded, EXIF-oriented image; downscaled to at most 4096 px on the long side
    /// ([`decode::MAX_WORKING_SIDE`]), see [`Portrait::scale`].
    pub source: RgbImage,
    /// Size of the oriented original, before any downscale.
    pub source_size: (u32, u32),
    /// `source` pixels per original pixel (1.0 unless the image was downscaled).
    pub scale: f32,
    /// S.
    pub resolution: u32,
    /// Whether the init values were measured on a face in the image (a YuNet detection, or
    /// 3DDFA_V2 on the whole image with [`FaceSelect::Off`] and models).
    pub detected: bool,
    /// The face box x, y, w, h (YuNet's; with [`FaceSelect::Off`], derived from the landmarks).
    pub face_box: Option<[f32; 4]>,
    /// The 68 landmarks (iBUG order) of the chosen face.
    pub landmarks: Option<Vec<[f32; 2]>>,
    /// All detected faces, largest first (empty with [`FaceSelect::Off`] or without models).
    pub faces: Vec<Detection>,
    /// The square crop x, y, side. It may extend past the image; that part is filled by
    /// replicating the border pixels.
    pub crop: [f32; 3],
    /// `[yaw, pitch, roll, s, tx, ty]`: degrees, 3DMM scale, translation in 3DDFA's 120×120 ROI
    /// frame (docs/portrait.md §3).
    pub init_pose: [f32; 6],
    /// `[left, right]` eye-openness ratios (68-landmark formula, docs/portrait.md §3; ≈ 0.3 for
    /// open eyes).
    pub init_eye: [f32; 2],
    pub pose_source: ValueSource,
    pub eye_source: ValueSource,
    /// The crop resized to S×S (what `src_img` holds), for previews and tests.
    pub crop_image: RgbImage,
    /// `[3, S, S]` planar RGB in [0, 1].
    pub src_img: Vec<f32>,
    /// `[S, S]`: 1 inside the face box (68-landmark hull in crop coordinates), else 0.
    pub face_mask: Vec<f32>,
    /// Human-readable warnings (fallbacks taken), for the element to post.
    pub warnings: Vec<String>,
}

/// Decodes and analyses the portrait in `path`.
///
/// Errors: unreadable, corrupt, truncated or oversized files (naming the file); in strict mode,
/// a missing face. `models` = `None` skips detection (defaults or overrides are used).
pub fn analyse_file(
    path: &Path,
    models: Option<&FaceModels>,
    opts: &PortraitOptions,
) -> Result<Portrait> {
    let decoded = decode::decode_file(path)?;
    analyse_decoded(decoded, &path.display().to_string(), models, opts)
}

/// Decodes and analyses an encoded image held in memory (PNG, JPEG; EXIF orientation
/// honoured); `name` appears in errors and warnings.
pub fn analyse_bytes(
    bytes: &[u8],
    name: &str,
    models: Option<&FaceModels>,
    opts: &PortraitOptions,
) -> Result<Portrait> {
    analyse_decoded(decode::decode_bytes(bytes, name)?, name, models, opts)
}

/// Analyses an already decoded image (its orientation is taken as is).
pub fn analyse_image(
    img: DynamicImage,
    models: Option<&FaceModels>,
    opts: &PortraitOptions,
) -> Result<Portrait> {
    analyse_decoded(
        decode::decode_image(img),
        "the portrait image",
        models,
        opts,
    )
}

/// The face the init values are measured on, in working pixels.
struct Face {
    bbox: [f32; 4],
    landmarks: Vec<[f32; 2]>,
    pose: [f32; 6],
}

fn analyse_decoded(
    d: decode::Decoded,
    name: &str,
    models: Option<&FaceModels>,
    opts: &PortraitOptions,
) -> Result<Portrait> {
    let s = opts.resolution;
    if !(8..=2048).contains(&s) {
        bail!("portrait resolution {s} is out of range (8..=2048; DAWN packs use 128 or 256)");
    }
    let img = &d.image;
    let size = img.dimensions();
    let mut warnings = Vec::new();
    let mut faces = Vec::new();
    let mut face: Option<Face> = None;
    // `None` = measurement impossible, with the reason.
    let mut missing: Option<String> = None;

    let square = match (opts.select, models) {
        (FaceSelect::Off, Some(m)) => {
            let sq = crop::centre_square(size);
            let whole = [sq.x as f32, sq.y as f32, sq.side as f32];
            let first = tddfa::run(m, img, whole)?;
            let guess = tddfa::box_from_landmarks(&first.landmarks);
            let fit = tddfa::run(m, img, tddfa::roi_from_box(guess))?;
            let bbox = tddfa::box_from_landmarks(&fit.landmarks);
            // A face crop framed like DAWN's has a face box of about half its side.
            let fill = bbox[2].max(bbox[3]) / sq.side as f32;
            if fill < OFF_MIN_FACE_FILL {
                warnings.push(format!(
                    "detect-face=false but the face found in {name} spans only {:.0} % of the \
                     image; off expects a face crop (face about half the image): pose/eyes may \
                     be wrong, use detect-face=true for whole photos",
                    fill * 100.0
                ));
            }
            face = Some(Face {
                bbox,
                landmarks: fit.landmarks,
                pose: fit.pose,
            });
            sq
        }
        (FaceSelect::Off, None) => {
            if opts.pose_override.is_none() || opts.eye_override.is_none() {
                missing = Some(format!(
                    "no face models given for {name} (detect-face=false); cannot measure the \
                     init pose/eyes"
                ));
            }
            crop::centre_square(size)
        }
        (_, None) => {
            missing = Some(format!(
                "no face models given; cannot find the face in {name}"
            ));
            crop::centre_square(size)
        }
        (select, Some(m)) => {
            faces = detect::detect(m, img)?;
            let wanted = match select {
                FaceSelect::Index(i) => i,
                _ => 0,
            };
            let chosen = match faces.get(wanted) {
                Some(f) => Some(*f),
                None if faces.is_empty() => {
                    missing = Some(format!("no face found in {name}"));
                    None
                }
                None => {
                    let text = format!(
                        "face index {wanted} requested but only {} face(s) found in {name}",
                        faces.len()
                    );
                    if opts.strict {
                        bail!("{text}; fix: choose an index below {}", faces.len());
                    }
                    warnings.push(format!("{text}; using the largest face"));
                    faces.first().copied()
                }
            };
            match chosen {
                Some(det) => {
                    let fit = tddfa::run(m, img, tddfa::roi_from_box(det.bbox))?;
                    face = Some(Face {
                        bbox: det.bbox,
                        landmarks: fit.landmarks,
                        pose: fit.pose,
                    });
                    crop::crop_for_face(det.bbox, det.centre(), size)
                }
                None => crop::centre_square(size),
            }
        }
    };

    if let Some(reason) = &missing {
        if opts.strict {
            bail!(
                "{reason} (strict mode); fix: use a photo with a clearly visible face, give the \
                 face models, or turn strict off to fall back to the default pose/eyes"
            );
        }
        let using = match (opts.pose_override.is_some(), opts.eye_override.is_some()) {
            (true, true) => "using the given init pose/eyes and a centred crop",
            (true, false) => "using the given init pose, the default eyes and a centred crop",
            (false, true) => "using the default pose, the given eyes and a centred crop",
            (false, false) => "using the default pose/eyes and a centred crop",
        };
        warnings.push(format!("{reason}; {using}"));
    }

    let (init_pose, pose_source) = match (opts.pose_override, &face) {
        (Some(p), _) => (p, ValueSource::Override),
        (None, Some(f)) => (f.pose, ValueSource::Measured),
        (None, None) => (opts.default_pose, ValueSource::Default),
    };
    let (init_eye, eye_source) = match (opts.eye_override, &face) {
        (Some(e), _) => (e, ValueSource::Override),
        (None, Some(f)) => (pose::eye_ratios(&f.landmarks), ValueSource::Measured),
        (None, None) => (opts.default_eye, ValueSource::Default),
    };

    let crop_image = crop::extract(img, square, s);
    let src_img = crop::planar_unit(&crop_image);
    let working_crop = [square.x as f32, square.y as f32, square.side as f32];
    let hull = match &face {
        Some(f) => crop::hull_in_crop(&f.landmarks, working_crop, s),
        None => crop::default_hull(s),
    };
    let face_mask = crop::box_mask(hull, s);

    let k = d.scale;
    let to_src = |p: [f32; 2]| [p[0] / k, p[1] / k];
    for f in &mut faces {
        f.bbox = f.bbox.map(|v| v / k);
        f.kps = f.kps.map(to_src);
    }
    Ok(Portrait {
        source_size: d.source_size,
        scale: k,
        resolution: s,
        detected: face.is_some(),
        face_box: face.as_ref().map(|f| f.bbox.map(|v| v / k)),
        landmarks: face
            .as_ref()
            .map(|f| f.landmarks.iter().copied().map(to_src).collect()),
        faces,
        crop: square.to_source(k),
        init_pose,
        init_eye,
        pose_source,
        eye_source,
        crop_image,
        src_img,
        face_mask,
        warnings,
        source: d.image,
    })
}
