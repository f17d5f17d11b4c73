//! The DAWN engine: GStreamer-free, usable from tests, examples and benchmarks.
//!
//! [`Engine`] holds one ONNX Runtime session per graph of a model pack; [`Stream`] turns one
//! audio stream into frames chunk by chunk; [`Avatar`] is an encoded portrait. Several streams
//! and avatars can share one engine.

pub mod audio;
pub mod avatar;
pub mod chunker;
pub mod diffusion;
pub mod noise;
pub mod pack;
pub mod pbnet;
pub mod pixels;
pub mod renderer;
pub mod runtime;
pub mod sampler;
pub mod stats;
pub mod stream;

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};

pub use avatar::{Avatar, PortraitInput};
pub use chunker::ChunkConfig;
pub use noise::{Noise, ReplayNoise, SeededNoise};
pub use pack::ModelPack;
pub use runtime::{Provider, Runtime, RuntimeConfig};
pub use stats::StageTimes;
pub use stream::{ChunkOutput, Stream, StreamConfig};

use pack::Role;
use runtime::Graph;
use sampler::Schedule;

/// A loaded, validated model pack ready to run.
pub struct Engine {
    pub pack: ModelPack,
    pub runtime: Runtime,
    pub schedule: Schedule,
    /// The opaque static channel count (Cs) of this pack.
    pub static_channels: usize,
    pub(crate) audio_encoder: Graph,
    pub(crate) pbnet_pose: Graph,
    pub(crate) pbnet_blink: Graph,
    pub(crate) portrait_encoder: Graph,
    pub(crate) denoiser: Graph,
    pub(crate) decoder: Graph,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("pack", &self.pack.dir)
            .field("provider", &self.runtime.provider())
            .finish()
    }
}

impl Engine {
    /// Loads and validates a pack. `progress` is told which graph is loading (the element turns
    /// it into GStreamer progress messages).
    pub fn load(dir: &Path, config: RuntimeConfig, progress: &mut dyn FnMut(&str)) -> Result<Self> {
        let pack = ModelPack::open(dir)?;
        let runtime = Runtime::new(config)?;
        let mut graphs = Vec::new();
        let mut problems = Vec::new();
        let mut static_channels = [None, None];
        for (role, file) in pack.manifest.graphs.iter() {
            progress(&format!("loading {file}"));
            let path = dir.join(file);
            let graph = Graph::new(role.name(), runtime.session(&path)?)
                .with_staging(runtime.host_staging());
            let (inputs, outputs) = graph.signature();
            let (mut p, cs) = pack::check_signature(role, file, &pack.manifest, &inputs, &outputs);
            problems.append(&mut p);
            match role {
                Role::PortraitEncoder => static_channels[0] = cs,
                Role::Denoiser => static_channels[1] = cs,
                _ => {}
            }
            graphs.push(graph);
        }
        if let [Some(a), Some(b)] = static_channels
            && a != b
        {
            problems.push(format!(
                "portrait_encoder output `static` has {a} channels but the denoiser's input `static` has {b}"
            ));
        }
        if !problems.is_empty() {
            anyhow::bail!(pack::format_problems(dir, &problems));
        }
        let mut it = graphs.into_iter();
        let mut next = || it.next().expect("six graphs");
        Ok(Self {
            schedule: Schedule::from_spec(&pack.manifest.diffusion),
            static_channels: static_channels[0].unwrap_or(0) as usize,
            audio_encoder: next(),
            pbnet_pose: next(),
            pbnet_blink: next(),
            portrait_encoder: next(),
            denoiser: next(),
            decoder: next(),
            pack,
            runtime,
        })
    }

    pub fn resolution(&self) -> usize {
        self.pack.resolution()
    }

    pub fn latent_size(&self) -> usize {
        self.pack.latent_size()
    }

    /// The pack's default sampling steps and eta.
    pub fn default_steps(&self) -> usize {
        self.pack.manifest.diffusion.sampling_steps as usize
    }

    pub fn default_eta(&self) -> f32 {
        self.pack.manifest.diffusion.eta
    }

    /// Encodes a portrait (runs the portrait encoder; safe to call from another thread while a
    /// stream runs).
    pub fn avatar(&self, input: PortraitInput) -> Result<Avatar> {
        Avatar::encode(&self.portrait_encoder, self.resolution(), input)
            .context("encoding the portrait")
    }

    /// Time spent in each graph so far (audio, pose, blink, denoiser, decoder).
    pub fn graph_times(&self) -> [Duration; 5] {
        stream::graph_times(self)
    }

    /// Runs the denoiser once at `frames` frames so the first real chunk does not pay
    /// ONNX Runtime's first-run cost at that shape (40–70 % slower).
    pub fn warm_up(&self, avatar: &Avatar, frames: usize) -> Result<()> {
        let s = self.latent_size();
        let x = vec![0f32; 3 * frames * s * s];
        let cond = vec![0f32; frames * pack::COND_DIM];
        self.denoiser.with_session(|session| {
            session.run(ort::inputs![
                "x_t" => ort::value::TensorRef::from_array_view(([1usize, 3, frames, s, s], &x[..]))?,
                "static" => &avatar.static_input,
                "timestep" => ort::value::TensorRef::from_array_view(([1usize], &[500.0f32][..]))?,
                "cond" => ort::value::TensorRef::from_array_view(([1usize, frames, pack::COND_DIM], &cond[..]))?,
            ])?;
            Ok(())
        })
    }
}
