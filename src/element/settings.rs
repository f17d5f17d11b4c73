//! The element's properties: one field per property, defaults from named constants (which the
//! property specs use too, so `gst-inspect-1.0` shows the same defaults the code uses).

use std::path::PathBuf;

use crate::engine::chunker::{
    LIVE_CHUNKING, OFFLINE_CONTEXT, OFFLINE_LOOKAHEAD, offline_chunk, offline_max_call,
};
use crate::engine::{ChunkConfig, Provider, RuntimeConfig};

pub const DEFAULT_DEVICE_ID: i32 = 0;
pub const DEFAULT_TRT_FP16: bool = true;
/// 0 = the pack's default (20 for DAWN).
pub const DEFAULT_SAMPLING_STEPS: u32 = 0;
/// Lowest step count live degradation may go down to.
pub const DEFAULT_MIN_SAMPLING_STEPS: u32 = 4;
pub const DEFAULT_SEED: u64 = 1234;
/// 0 / -1 = chosen by mode (live or not), see [`Settings::chunking`].
pub const DEFAULT_CHUNK_FRAMES: u32 = 0;
pub const DEFAULT_CONTEXT_FRAMES: i32 = -1;
pub const DEFAULT_LOOKAHEAD_FRAMES: i32 = -1;
/// Processing budget added to the latency in live pipelines, in milliseconds.
pub const DEFAULT_LATENCY_MS: u32 = 1000;
pub const DEFAULT_FACE_INDEX: i32 = -1;
pub const DEFAULT_DETECT_FACE: bool = true;
pub const DEFAULT_STRICT: bool = false;
pub const DEFAULT_OUTPUT_WIDTH: u32 = 0;
pub const DEFAULT_OUTPUT_HEIGHT: u32 = 0;
pub const DEFAULT_FEATHER: f64 = 0.08;
pub const DEFAULT_DECODER_BATCH: u32 = 8;

/// What the element outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, glib::Enum)]
#[enum_type(name = "GstDawnOutput")]
pub enum OutputMode {
    /// The square face crop at the model pack's resolution.
    #[default]
    #[enum_value(name = "Face crop at the model pack's resolution", nick = "face")]
    Face,
    /// The whole portrait with the generated face pasted back.
    #[enum_value(
        name = "Whole portrait with the animated face pasted back",
        nick = "portrait"
    )]
    Portrait,
}

/// The execution-provider property.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, glib::Enum)]
#[enum_type(name = "GstDawnExecutionProvider")]
pub enum ExecutionProvider {
    #[default]
    #[enum_value(name = "CUDA when it loads, else CPU with a warning", nick = "auto")]
    Auto,
    #[enum_value(
        name = "CPU (offline rendering; far slower than real time)",
        nick = "cpu"
    )]
    Cpu,
    #[enum_value(name = "CUDA (error if it cannot be loaded)", nick = "cuda")]
    Cuda,
    #[enum_value(
        name = "TensorRT with CUDA fallback (error if it cannot be loaded)",
        nick = "tensorrt"
    )]
    TensorRt,
}

impl From<ExecutionProvider> for Provider {
    fn from(p: ExecutionProvider) -> Self {
        match p {
            ExecutionProvider::Auto => Provider::Auto,
            ExecutionProvider::Cpu => Provider::Cpu,
            ExecutionProvider::Cuda => Provider::Cuda,
            ExecutionProvider::TensorRt => Provider::TensorRt,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub image: Option<PathBuf>,
    pub model_path: Option<PathBuf>,
    pub face_models: Option<PathBuf>,
    pub execution_provider: ExecutionProvider,
    pub device_id: i32,
    pub trt_cache_dir: Option<PathBuf>,
    pub trt_fp16: bool,
    pub sampling_steps: u32,
    pub min_sampling_steps: u32,
    pub seed: u64,
    pub chunk_frames: u32,
    pub context_frames: i32,
    pub lookahead_frames: i32,
    pub latency_ms: u32,
    pub face_index: i32,
    pub detect_face: bool,
    pub strict: bool,
    pub init_pose: Option<[f32; 6]>,
    pub init_eyes: Option<[f32; 2]>,
    pub output: OutputMode,
    pub output_width: u32,
    pub output_height: u32,
    pub feather: f64,
    pub decoder_batch: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            image: None,
            model_path: None,
            face_models: None,
            execution_provider: ExecutionProvider::default(),
            device_id: DEFAULT_DEVICE_ID,
            trt_cache_dir: None,
            trt_fp16: DEFAULT_TRT_FP16,
            sampling_steps: DEFAULT_SAMPLING_STEPS,
            min_sampling_steps: DEFAULT_MIN_SAMPLING_STEPS,
            seed: DEFAULT_SEED,
            chunk_frames: DEFAULT_CHUNK_FRAMES,
            context_frames: DEFAULT_CONTEXT_FRAMES,
            lookahead_frames: DEFAULT_LOOKAHEAD_FRAMES,
            latency_ms: DEFAULT_LATENCY_MS,
            face_index: DEFAULT_FACE_INDEX,
            detect_face: DEFAULT_DETECT_FACE,
            strict: DEFAULT_STRICT,
            init_pose: None,
            init_eyes: None,
            output: OutputMode::default(),
            output_width: DEFAULT_OUTPUT_WIDTH,
            output_height: DEFAULT_OUTPUT_HEIGHT,
            feather: DEFAULT_FEATHER,
            decoder_batch: DEFAULT_DECODER_BATCH,
        }
    }
}

impl Settings {
    /// Chunk sizes for a live or non-live upstream, a pack resolution and (offline) the
    /// input's length in frames when upstream knows it; explicit properties win.
    pub fn chunking(
        &self,
        live: bool,
        resolution: usize,
        total_frames: Option<usize>,
    ) -> ChunkConfig {
        let (l, r) = if live {
            (LIVE_CHUNKING.1, LIVE_CHUNKING.2)
        } else {
            (OFFLINE_CONTEXT, OFFLINE_LOOKAHEAD)
        };
        let context = usize::try_from(self.context_frames).unwrap_or(l);
        let lookahead = usize::try_from(self.lookahead_frames).unwrap_or(r);
        let chunk = if self.chunk_frames > 0 {
            self.chunk_frames as usize
        } else if live {
            LIVE_CHUNKING.0
        } else {
            offline_chunk(
                offline_max_call(resolution),
                context,
                lookahead,
                total_frames,
            )
        };
        ChunkConfig::new(chunk, context, lookahead)
    }

    /// The pack and the portrait, which the element cannot start without.
    pub fn required_paths(&self) -> Result<(PathBuf, PathBuf), gst::ErrorMessage> {
        let Some(model_path) = self.model_path.clone() else {
            return Err(gst::error_msg!(
                gst::ResourceError::NotFound,
                ("The model-path property is not set; fix: set model-path to a DAWN model pack directory (tests/models/tiny128 is the untrained test pack; docs/exporter.md makes a real one)")
            ));
        };
        let Some(image) = self.image.clone() else {
            return Err(gst::error_msg!(
                gst::ResourceError::NotFound,
                ("The image property is not set; fix: set image to a portrait (PNG or JPEG)")
            ));
        };
        Ok((model_path, image))
    }

    pub fn runtime_config(&self) -> RuntimeConfig {
        RuntimeConfig {
            provider: self.execution_provider.into(),
            device_id: self.device_id,
            trt_cache_dir: self.trt_cache_dir.clone(),
            trt_fp16: self.trt_fp16,
            ..RuntimeConfig::default()
        }
    }
}

#[cfg(test)]
mod chunking_tests {
    use super::*;

    #[test]
    fn explicit_properties_win_and_live_uses_small_chunks() {
        let mut s = Settings::default();
        let live = s.chunking(true, 128, Some(1000));
        assert_eq!((live.chunk, live.context, live.lookahead), LIVE_CHUNKING);
        let off = s.chunking(false, 256, Some(200));
        assert_eq!((off.chunk, off.context, off.lookahead), (50, 20, 10));
        s.chunk_frames = 8;
        s.context_frames = 2;
        assert_eq!(s.chunking(false, 128, Some(1000)).chunk, 8);
        assert_eq!(s.chunking(false, 128, Some(1000)).context, 2);
    }
}
