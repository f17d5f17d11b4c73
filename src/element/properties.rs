//! The element's properties: specifications (shown by `gst-inspect-1.0`), setting and reading.
//! Properties that only take effect at start are refused in PAUSED and PLAYING with a warning;
//! the portrait's analysis settings re-run the analysis when they change while running.

use std::path::PathBuf;
use std::sync::LazyLock;
use std::time::Duration;

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;

use super::imp::{CAT, DawnAvatar};
use super::settings::*;

pub(super) fn specs() -> &'static [glib::ParamSpec] {
    static PROPS: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
        vec![
                glib::ParamSpecString::builder("image")
                    .nick("Portrait image")
                    .blurb("Portrait to animate (PNG or JPEG). Can be changed while PLAYING: the new portrait takes effect at the next chunk")
                    .mutable_playing()
                    .build(),
                glib::ParamSpecString::builder("model-path")
                    .nick("Model pack")
                    .blurb("Directory of a DAWN model pack (manifest.json + ONNX graphs, see docs/model-pack.md)")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("face-models")
                    .nick("Face models")
                    .blurb("Directory with yunet_s_dynamic.onnx, tddfa_v2_mb05_120x120.onnx and tddfa_param_mean_std_62.json for face detection and init pose (default: <model-path>/face when present, else $DAWN_FACE_MODELS, else the models built into the plugin)")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("execution-provider", ExecutionProvider::Auto)
                    .nick("Execution provider")
                    .blurb("ONNX Runtime execution provider: auto = CUDA when it loads, else CPU with a warning; an explicit GPU provider that fails is an error")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecInt::builder("device-id")
                    .nick("GPU device")
                    .blurb("CUDA/TensorRT device index")
                    .minimum(0)
                    .default_value(DEFAULT_DEVICE_ID)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("trt-cache-dir")
                    .nick("TensorRT engine cache")
                    .blurb("Directory where TensorRT caches built engines (execution-provider=tensorrt); empty = no cache")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("tensorrt-fp16")
                    .nick("TensorRT fp16")
                    .blurb("execution-provider=tensorrt: build fp16 engines (about twice as fast; the graphs' inputs and outputs stay float32)")
                    .default_value(DEFAULT_TRT_FP16)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("sampling-steps")
                    .nick("Sampling steps")
                    .blurb("DDIM steps per chunk; 0 = the model pack's default (20 for DAWN). Fewer steps are faster and rougher")
                    .maximum(999)
                    .default_value(DEFAULT_SAMPLING_STEPS)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("min-sampling-steps")
                    .nick("Minimum sampling steps")
                    .blurb("Live pipelines: lowest step count the element degrades to when inference falls behind, before repeating frames")
                    .minimum(1)
                    .maximum(999)
                    .default_value(DEFAULT_MIN_SAMPLING_STEPS)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt64::builder("seed")
                    .nick("Seed")
                    .blurb("Seed of the random generator (PBNet and diffusion noise); the same seed and audio give identical frames")
                    .default_value(DEFAULT_SEED)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("chunk-frames")
                    .nick("Chunk frames")
                    .blurb("New frames generated per chunk (40 ms each); 0 = by mode: 16 live; offline the whole input in one call when upstream knows its length and it fits (200 frames at 128, 80 at 256, bounded by memory), else equal chunks as large as that allows")
                    .maximum(1000)
                    .default_value(DEFAULT_CHUNK_FRAMES)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecInt::builder("context-frames")
                    .nick("Context frames")
                    .blurb("Already emitted frames each chunk re-uses so motion is continuous across chunks; -1 = by mode: 16 live, 20 offline")
                    .minimum(-1)
                    .maximum(1000)
                    .default_value(DEFAULT_CONTEXT_FRAMES)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecInt::builder("lookahead-frames")
                    .nick("Look-ahead frames")
                    .blurb("Future frames generated and discarded per chunk (adds latency, improves seams); -1 = by mode: 8 live, 10 offline")
                    .minimum(-1)
                    .maximum(1000)
                    .default_value(DEFAULT_LOOKAHEAD_FRAMES)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("latency")
                    .nick("Processing latency")
                    .blurb("Live pipelines: time budget for generating a chunk, in milliseconds, added to the latency the element reports")
                    .maximum(60_000)
                    .default_value(DEFAULT_LATENCY_MS)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecInt::builder("face-index")
                    .nick("Face index")
                    .blurb("Which detected face to animate, by size (0 = largest); -1 = the largest")
                    .minimum(-1)
                    .default_value(DEFAULT_FACE_INDEX)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecBoolean::builder("detect-face")
                    .nick("Detect face")
                    .blurb("Find the face in the portrait; false for images that already are square face crops")
                    .default_value(DEFAULT_DETECT_FACE)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecBoolean::builder("strict")
                    .nick("Strict")
                    .blurb("Fail when no face is found instead of using DAWN's default pose and eyes")
                    .default_value(DEFAULT_STRICT)
                    .mutable_playing()
                    .build(),
                gst::ParamSpecArray::builder("init-pose")
                    .nick("Initial pose")
                    .blurb("Override the detected head pose: an array of 6 numbers <yaw, pitch, roll, scale, tx, ty> (degrees, 3DDFA scale and ROI translation); empty = detect. Changeable while PLAYING (applies at the next chunk)")
                    .element_spec(&glib::ParamSpecFloat::builder("value").build())
                    .mutable_playing()
                    .build(),
                gst::ParamSpecArray::builder("init-eyes")
                    .nick("Initial eye openness")
                    .blurb("Override the detected eye-openness ratios: an array of 2 numbers <left, right> (about 0.3 for open eyes); empty = detect. Changeable while PLAYING (applies at the next chunk)")
                    .element_spec(&glib::ParamSpecFloat::builder("value").build())
                    .mutable_playing()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("output", OutputMode::Face)
                    .nick("Output")
                    .blurb("face = the square face crop at the model pack's resolution; portrait = the whole portrait with the animated face pasted back (feathered edge), e.g. for a virtual camera")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("output-width")
                    .nick("Output width")
                    .blurb("output=portrait: width in pixels; 0 (with output-height 0) = the portrait's own size, at most 1280 on its long side")
                    .maximum(8192)
                    .default_value(DEFAULT_OUTPUT_WIDTH)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("output-height")
                    .nick("Output height")
                    .blurb("output=portrait: height in pixels; 0 = automatic (see output-width)")
                    .maximum(8192)
                    .default_value(DEFAULT_OUTPUT_HEIGHT)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecDouble::builder("feather")
                    .nick("Feather")
                    .blurb("output=portrait: width of the blended edge around the pasted face, as a fraction of the face square's side")
                    .minimum(0.0)
                    .maximum(0.5)
                    .default_value(DEFAULT_FEATHER)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("decoder-batch")
                    .nick("Decoder batch")
                    .blurb("Frames per decoder call (bounds memory: about 1 GiB at 256 with 8; larger batches are not faster on the CPU)")
                    .minimum(1)
                    .maximum(256)
                    .default_value(DEFAULT_DECODER_BATCH)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt64::builder("frames-generated")
                    .nick("Frames generated")
                    .blurb("Frames generated by the model so far")
                    .read_only()
                    .build(),
                glib::ParamSpecUInt64::builder("frames-repeated")
                    .nick("Frames repeated")
                    .blurb("Frames repeated because inference was late (live pipelines)")
                    .read_only()
                    .build(),
                glib::ParamSpecUInt64::builder("frames-dropped")
                    .nick("Frames dropped")
                    .blurb("Frames never shown because inference was late (live pipelines): generated after their time, or skipped without generating them; repeated frames fill their slots")
                    .read_only()
                    .build(),
                glib::ParamSpecDouble::builder("real-time-factor")
                    .nick("Real-time factor")
                    .blurb("Generation time / video duration of the last chunk (< 1 is faster than real time)")
                    .minimum(0.0)
                    .read_only()
                    .build(),
                glib::ParamSpecUInt::builder("current-sampling-steps")
                    .nick("Current sampling steps")
                    .blurb("Steps the last chunk ran (lower than sampling-steps when live degradation is active)")
                    .maximum(999)
                    .read_only()
                    .build(),
                glib::ParamSpecBoxed::builder::<gst::Structure>("stats")
                    .nick("Statistics")
                    .blurb("All statistics as a structure: frames generated/pushed/repeated/dropped, per-stage times (ms), real-time factors, current sampling steps and the live degradation rung (full, reduced-steps, repeating)")
                    .read_only()
                    .build(),
            ]
    });
    PROPS.as_ref()
}

/// Numbers of an `init-pose`/`init-eyes` array: exactly `N` finite values, or none (detect).
fn numbers<const N: usize>(value: &glib::Value) -> Result<Option<[f32; N]>, String> {
    let array = value
        .get::<gst::Array>()
        .map_err(|e| format!("not an array: {e}"))?;
    if array.is_empty() {
        return Ok(None);
    }
    if array.len() != N {
        return Err(format!("expected {N} numbers, got {}", array.len()));
    }
    let mut out = [0f32; N];
    for (o, v) in out.iter_mut().zip(array.iter()) {
        *o = v
            .get::<f32>()
            .map(f64::from)
            .or_else(|_| v.get::<f64>())
            .or_else(|_| v.get::<i32>().map(f64::from))
            .ok()
            .map(|x| x as f32)
            .filter(|x| x.is_finite())
            .ok_or_else(|| format!("{v:?} is not a finite number"))?;
    }
    Ok(Some(out))
}

fn array_value(v: Option<&[f32]>) -> glib::Value {
    gst::Array::new(v.unwrap_or_default().iter().map(|x| x.to_send_value())).to_value()
}

/// What a change of a property asks for beyond storing it.
enum Effect {
    None,
    /// Re-analyse the portrait (a new image, face selection or init override).
    Portrait,
}

impl DawnAvatar {
    pub(super) fn set_property_value(&self, value: &glib::Value, pspec: &glib::ParamSpec) {
        let name = pspec.name();
        let running = self.obj().current_state() > gst::State::Ready;
        let playing_ok = pspec.flags().contains(gst::PARAM_FLAG_MUTABLE_PLAYING);
        if running && !playing_ok {
            self.post_warning(
                gst::StreamError::Failed,
                &format!(
                    "property {name} can only be changed in the NULL or READY state; the change \
                     was ignored (set it before starting the pipeline)"
                ),
            );
            return;
        }
        let effect = match self.store(name, value) {
            Ok(effect) => effect,
            Err(e) => {
                self.post_warning(
                    gst::StreamError::Failed,
                    &format!("property {name}: {e}; the change was ignored"),
                );
                return;
            }
        };
        if let Effect::Portrait = effect
            && self.obj().current_state() >= gst::State::Ready
        {
            self.request_portrait();
        }
    }

    fn store(&self, name: &str, value: &glib::Value) -> Result<Effect, String> {
        let path = |v: &glib::Value| {
            v.get::<Option<String>>()
                .unwrap()
                .filter(|s| !s.is_empty())
                .map(PathBuf::from)
        };
        let mut s = self.settings.lock().unwrap();
        let before = s.clone();
        match name {
            "image" => s.image = path(value),
            "model-path" => s.model_path = path(value),
            "face-models" => s.face_models = path(value),
            "execution-provider" => s.execution_provider = value.get().unwrap(),
            "device-id" => s.device_id = value.get().unwrap(),
            "trt-cache-dir" => s.trt_cache_dir = path(value),
            "tensorrt-fp16" => s.trt_fp16 = value.get().unwrap(),
            "sampling-steps" => s.sampling_steps = value.get().unwrap(),
            "min-sampling-steps" => s.min_sampling_steps = value.get().unwrap(),
            "seed" => s.seed = value.get().unwrap(),
            "chunk-frames" => s.chunk_frames = value.get().unwrap(),
            "context-frames" => s.context_frames = value.get().unwrap(),
            "lookahead-frames" => s.lookahead_frames = value.get().unwrap(),
            "latency" => s.latency_ms = value.get().unwrap(),
            "face-index" => s.face_index = value.get().unwrap(),
            "detect-face" => s.detect_face = value.get().unwrap(),
            "strict" => s.strict = value.get().unwrap(),
            "init-pose" => s.init_pose = numbers::<6>(value)?,
            "init-eyes" => s.init_eyes = numbers::<2>(value)?,
            "decoder-batch" => s.decoder_batch = value.get().unwrap(),
            "output" => s.output = value.get().unwrap(),
            "output-width" => s.output_width = value.get().unwrap(),
            "output-height" => s.output_height = value.get().unwrap(),
            "feather" => s.feather = value.get().unwrap(),
            _ => unimplemented!("property {name}"),
        }
        gst::debug!(CAT, imp = self, "property {name} set");
        let analysis_changed = s.image != before.image
            || s.face_index != before.face_index
            || s.detect_face != before.detect_face
            || s.strict != before.strict
            || s.init_pose != before.init_pose
            || s.init_eyes != before.init_eyes;
        Ok(if analysis_changed {
            Effect::Portrait
        } else {
            Effect::None
        })
    }

    pub(super) fn property_value(&self, pspec: &glib::ParamSpec) -> glib::Value {
        let s = self.settings.lock().unwrap();
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string()).to_value();
        match pspec.name() {
            "image" => path(&s.image),
            "model-path" => path(&s.model_path),
            "face-models" => path(&s.face_models),
            "execution-provider" => s.execution_provider.to_value(),
            "device-id" => s.device_id.to_value(),
            "trt-cache-dir" => path(&s.trt_cache_dir),
            "tensorrt-fp16" => s.trt_fp16.to_value(),
            "sampling-steps" => s.sampling_steps.to_value(),
            "min-sampling-steps" => s.min_sampling_steps.to_value(),
            "seed" => s.seed.to_value(),
            "chunk-frames" => s.chunk_frames.to_value(),
            "context-frames" => s.context_frames.to_value(),
            "lookahead-frames" => s.lookahead_frames.to_value(),
            "latency" => s.latency_ms.to_value(),
            "face-index" => s.face_index.to_value(),
            "detect-face" => s.detect_face.to_value(),
            "strict" => s.strict.to_value(),
            "init-pose" => array_value(s.init_pose.as_ref().map(|v| &v[..])),
            "init-eyes" => array_value(s.init_eyes.as_ref().map(|v| &v[..])),
            "decoder-batch" => s.decoder_batch.to_value(),
            "output" => s.output.to_value(),
            "output-width" => s.output_width.to_value(),
            "output-height" => s.output_height.to_value(),
            "feather" => s.feather.to_value(),
            name => {
                drop(s);
                self.stat_value(name)
            }
        }
    }

    fn stat_value(&self, name: &str) -> glib::Value {
        let (st, next) = {
            let s = self.state();
            (s.stats, s.stream.next_frame)
        };
        match name {
            "frames-generated" => st.frames_generated.to_value(),
            "frames-repeated" => st.frames_repeated.to_value(),
            "frames-dropped" => st.frames_dropped.to_value(),
            "real-time-factor" => st.last_rtf.to_value(),
            "current-sampling-steps" => st.current_steps.to_value(),
            "stats" => {
                let ms = |d: Duration| d.as_secs_f64() * 1e3;
                let t = st.times;
                gst::Structure::builder("dawn-stats")
                    .field("frames-generated", st.frames_generated)
                    .field("frames-pushed", st.frames_pushed)
                    .field("frames-repeated", st.frames_repeated)
                    .field("frames-dropped", st.frames_dropped)
                    .field("chunks", st.chunks)
                    .field("current-sampling-steps", st.current_steps)
                    .field("live-rung", st.rung(next))
                    .field("real-time-factor", st.last_rtf)
                    .field("total-real-time-factor", t.real_time_factor())
                    .field("audio-ms", ms(t.audio))
                    .field("pbnet-ms", ms(t.pbnet))
                    .field("denoiser-ms", ms(t.denoiser))
                    .field("decoder-ms", ms(t.decoder))
                    .field("host-ms", ms(t.host))
                    .field("total-ms", ms(t.total))
                    .build()
                    .to_value()
            }
            _ => unimplemented!("property {name}"),
        }
    }
}
