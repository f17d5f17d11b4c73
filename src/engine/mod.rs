//! The DAWN engine: GStreamer-free, usable from tests, examples and benchmarks.
//!
//! [`Engine`] holds one ONNX Runtime session per graph of a model pack; [`Stream`] turns one
//! audio stream into frames chunk by chunk; [`Avatar`] is an encoded portrait. Several streams
//! and avatars can share one engine: [`shared`] hands out one engine per pack and settings in a
//! process, and [`turns`] makes the streams on it take turns graph call by graph call.

pub mod audio;
pub mod avatar;
pub mod cancel;
pub mod chunker;
pub mod decoder;
pub mod diffusion;
pub mod files;
pub mod noise;
pub mod pack;
pub mod pbnet;
pub mod pixels;
pub mod placement;
pub mod runtime;
pub mod sampler;
pub mod shared;
pub mod stats;
pub mod stream;
pub mod turns;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};

pub use avatar::{Avatar, PortraitInput};
pub use cancel::Cancel;
pub use chunker::ChunkConfig;
pub use noise::{Noise, ReplayNoise, SeededNoise};
pub use pack::ModelPack;
pub use placement::Placement;
pub use runtime::{Provider, Runtime, RuntimeConfig};
pub use shared::{EngineRegistry, shared_engine};
pub use stats::StageTimes;
pub use stream::{ChunkOutput, Stream, StreamConfig, Tap};

use pack::Role;
use runtime::Graph;
use sampler::Schedule;
use turns::Turns;

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
    /// Frame counts the denoiser was already warmed up at (each shape is paid once per engine,
    /// not once per element sharing it).
    warmed: std::sync::Mutex<Vec<usize>>,
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
        let turns = Arc::new(Turns::default());
        for (role, file) in pack.manifest.graphs.iter() {
            progress(&format!("loading {file}"));
            let path = dir.join(file);
            let (session, placement) = runtime.graph_session(&path)?;
            let graph = Graph::new(role.name(), session)
                .with_staging(runtime.host_staging())
                .with_placement(placement)
                .with_turns(turns.clone());
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
        let audio_encoder = next();
        audio::check_encoder(&audio_encoder).with_context(|| {
            format!(
                "{}",
                dir.join(&pack.manifest.graphs.audio_encoder).display()
            )
        })?;
        Ok(Self {
            schedule: Schedule::from_spec(&pack.manifest.diffusion),
            static_channels: static_channels[0].unwrap_or(0) as usize,
            audio_encoder,
            pbnet_pose: next(),
            pbnet_blink: next(),
            portrait_encoder: next(),
            denoiser: next(),
            decoder: next(),
            warmed: Default::default(),
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

    /// Where ONNX Runtime placed each graph's nodes (known with
    /// [`RuntimeConfig::log_placement`]), in pack order.
    pub fn placements(&self) -> [(&'static str, &Placement); 6] {
        [
            &self.audio_encoder,
            &self.pbnet_pose,
            &self.pbnet_blink,
            &self.portrait_encoder,
            &self.denoiser,
            &self.decoder,
        ]
        .map(|g| (g.name, g.placement()))
    }

    /// Runs the denoiser once at `frames` frames so the first real chunk does not pay
    /// ONNX Runtime's first-run cost at that shape (40–70 % slower). Once per shape and engine.
    pub fn warm_up(&self, avatar: &Avatar, frames: usize) -> Result<()> {
        let mut warmed = self.warmed.lock().unwrap_or_else(|e| e.into_inner());
        if warmed.contains(&frames) {
            return Ok(());
        }
        self.run_warm_up(avatar, frames)?;
        warmed.push(frames);
        Ok(())
    }

    fn run_warm_up(&self, avatar: &Avatar, frames: usize) -> Result<()> {
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
