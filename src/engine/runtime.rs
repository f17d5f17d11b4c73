//! ONNX Runtime set-up: loading the shared library, choosing the execution provider, and
//! creating sessions. Everything that touches `ort` configuration lives here so that the
//! engine, the portrait analyser and the tests share one environment.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use ort::ep::{self, ExecutionProviderDispatch};
use ort::memory::{AllocationDevice, Allocator, AllocatorType, MemoryInfo, MemoryType};
use ort::session::builder::GraphOptimizationLevel;
use ort::session::{IoBinding, Session};
use ort::value::Tensor;

/// Which ONNX Runtime execution provider runs the graphs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Provider {
    /// CUDA when it loads, else CPU with a warning.
    #[default]
    Auto,
    Cpu,
    Cuda,
    TensorRt,
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Provider::Auto => "auto",
            Provider::Cpu => "cpu",
            Provider::Cuda => "cuda",
            Provider::TensorRt => "tensorrt",
        })
    }
}

/// How sessions are created.
#[derive(Debug, Clone, PartialEq)]
pub struct RuntimeConfig {
    pub provider: Provider,
    pub device_id: i32,
    /// TensorRT: build fp16 engines.
    pub trt_fp16: bool,
    /// TensorRT: where built engines are cached (built once, reused across runs).
    pub trt_cache_dir: Option<PathBuf>,
    /// Intra-op threads for the CPU provider (0 = ONNX Runtime's default: one per core).
    pub intra_threads: usize,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            provider: Provider::Auto,
            device_id: 0,
            trt_fp16: true,
            trt_cache_dir: None,
            intra_threads: 0,
        }
    }
}

/// The environment variable that names the ONNX Runtime shared library.
pub const ORT_DYLIB_ENV: &str = "ORT_DYLIB_PATH";

static ENVIRONMENT: Mutex<Option<ort::environment::Environment>> = Mutex::new(None);

/// Loads the ONNX Runtime library once per process and returns the shared environment.
///
/// Errors name the file that was tried and the fix, because "library not found" is the first
/// thing a new user meets.
pub fn environment() -> Result<ort::environment::Environment> {
    let mut guard = ENVIRONMENT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(env) = guard.as_ref() {
        return Ok(env.clone());
    }
    let path = std::env::var_os(ORT_DYLIB_ENV)
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(find_project_library)
        .unwrap_or_else(|| PathBuf::from("libonnxruntime.so"));
    if path.is_absolute() && !path.exists() {
        bail!(
            "ONNX Runtime library not found at {} ({ORT_DYLIB_ENV}); fix: run tools/setup.sh and \
             set {ORT_DYLIB_ENV} to .ort/onnxruntime/capi/libonnxruntime.so.1.31.1 \
             (or `source .ort/env.sh`)",
            path.display()
        );
    }
    let builder = ort::init_from(&path).map_err(|e| {
        anyhow!(
            "could not load the ONNX Runtime library ({e}); fix: run tools/setup.sh and set \
             {ORT_DYLIB_ENV} to the full path of libonnxruntime.so.1.31.1 \
             (tools/setup.sh puts it in .ort/onnxruntime/capi/; `source .ort/env.sh` sets it)"
        )
    })?;
    let env = builder
        .with_name("gst-dawn")
        .build()
        .map_err(|e| anyhow!("could not create the ONNX Runtime environment: {e}"))?;
    *guard = Some(env.clone());
    Ok(env)
}

/// Where tools/setup.sh unpacks the ONNX Runtime library, relative to the project root.
pub const PROJECT_ORT_LIBRARY: &str = ".ort/onnxruntime/capi/libonnxruntime.so.1.31.1";

/// Without `ORT_DYLIB_PATH`, looks for the library tools/setup.sh installed in the project,
/// from the working directory and the running program upwards (so `cargo run` and the
/// project's own scripts work without any environment).
fn find_project_library() -> Option<PathBuf> {
    let mut starts = Vec::new();
    if let Ok(cwd) = std::env::current_dir() {
        starts.push(cwd);
    }
    if let Ok(exe) = std::env::current_exe() {
        starts.push(exe);
    }
    starts
        .iter()
        .flat_map(|s| s.ancestors())
        .map(|dir| dir.join(PROJECT_ORT_LIBRARY))
        .find(|p| p.is_file())
}

/// A resolved execution provider plus the options sessions are built with.
pub struct Runtime {
    env: ort::environment::Environment,
    config: RuntimeConfig,
    resolved: Provider,
    warnings: Vec<String>,
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("config", &self.config)
            .field("resolved", &self.resolved)
            .finish()
    }
}

impl Runtime {
    /// Loads ONNX Runtime and resolves the provider. `Auto` tries CUDA and falls back to the CPU
    /// (recorded in [`Runtime::warnings`]); an explicit GPU provider that fails is an error.
    pub fn new(config: RuntimeConfig) -> Result<Self> {
        let env = environment()?;
        let mut warnings = Vec::new();
        let resolved = match config.provider {
            Provider::Cpu => Provider::Cpu,
            Provider::Cuda | Provider::TensorRt => {
                probe_provider(&env, &config, config.provider).with_context(|| {
                    format!(
                        "execution-provider={} could not be loaded; fix: install the GPU build \
                         of ONNX Runtime (tools/setup.sh --gpu: onnxruntime-gpu 1.31.1 with CUDA 13 \
                         and cuDNN 9 on the library path), or use execution-provider=cpu",
                        config.provider
                    )
                })?;
                config.provider
            }
            Provider::Auto => match probe_provider(&env, &config, Provider::Cuda) {
                Ok(()) => Provider::Cuda,
                Err(e) => {
                    warnings.push(format!(
                        "CUDA execution provider unavailable ({e:#}); running on the CPU, which is far \
                         slower than real time. Install onnxruntime-gpu (tools/setup.sh --gpu) for live use."
                    ));
                    Provider::Cpu
                }
            },
        };
        Ok(Self {
            env,
            config,
            resolved,
            warnings,
        })
    }

    /// The provider sessions actually run on.
    pub fn provider(&self) -> Provider {
        self.resolved
    }

    /// Where host buffers that a graph reads or writes on every run should live.
    pub fn host_staging(&self) -> HostStaging {
        match self.resolved {
            Provider::Cuda | Provider::TensorRt => HostStaging::CudaPinned(self.config.device_id),
            Provider::Cpu | Provider::Auto => HostStaging::Cpu,
        }
    }

    pub fn config(&self) -> &RuntimeConfig {
        &self.config
    }

    /// Warnings produced while resolving the provider (for the element to post).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Creates a session for one graph file on the resolved provider.
    pub fn session(&self, path: &Path) -> Result<Session> {
        build_session(&self.env, &self.config, self.resolved, path)
            .map_err(|e| anyhow!("{e}"))
            .with_context(|| format!("could not load ONNX graph {}", path.display()))
    }

    /// Creates a session that always runs on the CPU (small graphs such as the face models,
    /// where a GPU round trip costs more than it saves).
    pub fn cpu_session(&self, path: &Path) -> Result<Session> {
        build_session(&self.env, &self.config, Provider::Cpu, path)
            .map_err(|e| anyhow!("{e}"))
            .with_context(|| format!("could not load ONNX graph {}", path.display()))
    }
}

fn dispatch(config: &RuntimeConfig, provider: Provider) -> Option<ExecutionProviderDispatch> {
    match provider {
        Provider::Cpu | Provider::Auto => None,
        Provider::Cuda => Some(
            ep::CUDA::default()
                .with_device_id(config.device_id)
                .build()
                .error_on_failure(),
        ),
        Provider::TensorRt => {
            let mut trt = ep::TensorRT::default()
                .with_device_id(config.device_id)
                .with_fp16(config.trt_fp16);
            if let Some(dir) = &config.trt_cache_dir {
                trt = trt
                    .with_engine_cache(true)
                    .with_engine_cache_path(dir.display())
                    .with_timing_cache(true)
                    .with_timing_cache_path(dir.display());
            }
            Some(trt.build().error_on_failure())
        }
    }
}

/// Registers the provider on a throw-away session builder: this loads the provider library
/// (and its CUDA dependencies) without needing a model.
fn probe_provider(
    env: &ort::environment::Environment,
    config: &RuntimeConfig,
    provider: Provider,
) -> Result<()> {
    let Some(ep) = dispatch(config, provider) else {
        return Ok(());
    };
    let builder = Session::builder(env).map_err(|e| anyhow!("{e}"))?;
    let mut builder = builder;
    ep.register(&mut builder).map_err(|e| anyhow!("{e}"))?;
    Ok(())
}

fn build_session(
    env: &ort::environment::Environment,
    config: &RuntimeConfig,
    provider: Provider,
    path: &Path,
) -> ort::Result<Session> {
    let mut builder = Session::builder(env)?
        .with_optimization_level(GraphOptimizationLevel::Level3)?
        .with_intra_threads(config.intra_threads)?
        // Spinning intra-op threads keep burning cores after a run returns, which starves the
        // host code between denoiser steps (and everything else on small machines).
        .with_intra_op_spinning(false)?
        // The memory pattern pre-plans one block per input shape on top of the arena; without
        // it a 110-frame denoiser call at 128 peaks at 3.2 GiB instead of 5.1 GiB, equally fast
        // (measured with tools/bench/memprobe.py, docs/performance.md).
        .with_memory_pattern(false)?;
    if let Some(ep) = dispatch(config, provider) {
        // TensorRT falls back to CUDA for the nodes it cannot take.
        let mut eps = vec![ep];
        if provider == Provider::TensorRt {
            eps.push(
                ep::CUDA::default()
                    .with_device_id(config.device_id)
                    .build()
                    .error_on_failure(),
            );
        }
        builder = builder.with_execution_providers(eps)?;
    }
    builder.commit_from_file(path)
}

/// Wall time spent inside ONNX Runtime, per graph.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct RunTime {
    pub calls: u64,
    pub total: Duration,
}

/// Host memory for tensors that cross to the device on every run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HostStaging {
    /// Ordinary memory: the CPU provider reads and writes it in place.
    #[default]
    Cpu,
    /// Page-locked memory on this CUDA device's host side, so each host↔device copy is one DMA
    /// transfer instead of a bounce through a staging buffer.
    CudaPinned(i32),
}

/// One graph's session, behind a mutex because `Session::run` takes `&mut self`, with the
/// time spent running it.
pub struct Graph {
    pub name: &'static str,
    session: Mutex<Session>,
    time: Mutex<RunTime>,
    staging: HostStaging,
}

impl fmt::Debug for Graph {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Graph").field("name", &self.name).finish()
    }
}

impl Graph {
    pub fn new(name: &'static str, session: Session) -> Self {
        Self {
            name,
            session: Mutex::new(session),
            time: Mutex::new(RunTime::default()),
            staging: HostStaging::Cpu,
        }
    }

    /// Sets where [`Graph::host_tensor`] allocates.
    pub fn with_staging(mut self, staging: HostStaging) -> Self {
        self.staging = staging;
        self
    }

    /// A host tensor for a graph input (`output == false`) or output that is rewritten on every
    /// run. Pinned on CUDA; if pinned memory cannot be had, ordinary memory still works (ONNX
    /// Runtime then copies through its own staging buffer).
    pub fn host_tensor(&self, shape: &[usize], output: bool) -> Result<Tensor<f32>> {
        let shape = shape.to_vec();
        if let HostStaging::CudaPinned(device) = self.staging {
            let kind = if output {
                MemoryType::CPUOutput
            } else {
                MemoryType::CPUInput
            };
            let session = self.session.lock().unwrap_or_else(|e| e.into_inner());
            let pinned = MemoryInfo::new(
                AllocationDevice::CUDA_PINNED,
                device,
                AllocatorType::Device,
                kind,
            )
            .and_then(|info| Allocator::new(&session, info))
            .and_then(|alloc| Tensor::<f32>::new(&alloc, shape.clone()));
            if let Ok(t) = pinned {
                return Ok(t);
            }
        }
        Tensor::<f32>::new(&Allocator::default(), shape)
            .map_err(|e| anyhow!("{e}"))
            .with_context(|| format!("allocating a host tensor for graph {}", self.name))
    }

    /// An I/O binding for this graph: inputs bound once (e.g. per chunk) are copied to the
    /// device once, not on every run.
    pub fn binding(&self) -> Result<IoBinding> {
        let session = self.session.lock().unwrap_or_else(|e| e.into_inner());
        session
            .create_binding()
            .map_err(|e| anyhow!("{e}"))
            .with_context(|| format!("creating an I/O binding for graph {}", self.name))
    }

    /// Runs the graph on a binding whose outputs are bound to preallocated tensors.
    pub fn run_binding(&self, binding: &IoBinding) -> Result<()> {
        self.with_session(|session| {
            session.run_binding(binding)?;
            Ok(())
        })
    }

    /// Runs `f` with the locked session and accounts the time it took.
    pub fn with_session<T>(&self, f: impl FnOnce(&mut Session) -> Result<T>) -> Result<T> {
        let mut session = self.session.lock().unwrap_or_else(|e| e.into_inner());
        let start = Instant::now();
        let out = f(&mut session);
        let elapsed = start.elapsed();
        drop(session);
        let mut t = self.time.lock().unwrap_or_else(|e| e.into_inner());
        t.calls += 1;
        t.total += elapsed;
        out.with_context(|| format!("running graph {}", self.name))
    }

    pub fn run_time(&self) -> RunTime {
        *self.time.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// (name, element type, dims with -1 for dynamic axes) of every input or output.
    pub fn signature(&self) -> (Vec<IoSpec>, Vec<IoSpec>) {
        let session = self.session.lock().unwrap_or_else(|e| e.into_inner());
        let conv = |outlets: &[ort::value::Outlet]| {
            outlets
                .iter()
                .map(|o| IoSpec {
                    name: o.name().to_string(),
                    is_f32: o.dtype().tensor_type() == Some(ort::value::TensorElementType::Float32),
                    dtype: format!("{:?}", o.dtype().tensor_type()),
                    dims: o
                        .dtype()
                        .tensor_shape()
                        .map(|s| s.iter().copied().collect())
                        .unwrap_or_default(),
                })
                .collect::<Vec<_>>()
        };
        (conv(session.inputs()), conv(session.outputs()))
    }
}

/// One graph input or output as declared in the ONNX file.
#[derive(Debug, Clone, PartialEq)]
pub struct IoSpec {
    pub name: String,
    pub is_f32: bool,
    pub dtype: String,
    /// Fixed sizes, or -1 for a dynamic (symbolic) axis.
    pub dims: Vec<i64>,
}
