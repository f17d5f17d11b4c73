//! ONNX Runtime set-up: loading the shared library, choosing the execution provider, and
//! creating sessions. Everything that touches `ort` configuration lives here so that the
//! engine, the portrait analyser and the tests share one environment.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use ort::ep::{self, ExecutionProviderDispatch};
use ort::logging::LogLevel;
use ort::memory::{AllocationDevice, Allocator, AllocatorType, MemoryInfo, MemoryType};
use ort::session::builder::{GraphOptimizationLevel, SessionBuilder};
use ort::session::{IoBinding, RunOptions, Session, SessionInputs, SessionOutputs};
use ort::value::Tensor;

use super::turns::Turns;

use super::files;
use super::pack::MAX_GRAPH_BYTES;
use super::placement::Placement;

/// Which ONNX Runtime execution provider runs the graphs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
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

/// How sessions are created. Engines with equal configurations and the same pack can be shared
/// ([`super::shared`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RuntimeConfig {
    pub provider: Provider,
    pub device_id: i32,
    /// TensorRT: build fp16 engines.
    pub trt_fp16: bool,
    /// TensorRT: where built engines are cached (built once, reused across runs).
    pub trt_cache_dir: Option<PathBuf>,
    /// Intra-op threads for the CPU provider (0 = ONNX Runtime's default: one per core).
    pub intra_threads: usize,
    /// Record which provider ONNX Runtime placed each node on (its verbose session log, read
    /// while the session is created): diagnostics for GPU runs ([`Graph::placement`]).
    pub log_placement: bool,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            provider: Provider::Auto,
            device_id: 0,
            trt_fp16: true,
            trt_cache_dir: None,
            intra_threads: 0,
            log_placement: false,
        }
    }
}

/// The environment variable that names the ONNX Runtime shared library.
pub const ORT_DYLIB_ENV: &str = "ORT_DYLIB_PATH";

/// The ONNX Runtime release this build expects (Cargo.toml, `[package.metadata.onnxruntime]`).
pub const ORT_VERSION: &str = env!("DAWN_ORT_VERSION");

/// The library path fixed at build time: `$DAWN_ORT_LIBRARY` when it was set for the build
/// (packagers), else the copy tools/setup.sh installs in the source tree's `.ort/`.
pub const BUILD_TIME_LIBRARY: &str = match option_env!("DAWN_ORT_LIBRARY") {
    Some(path) => path,
    None => env!("DAWN_ORT_PROJECT_LIBRARY"),
};

/// The last resort: the system's ONNX Runtime by its soname, found by the dynamic loader
/// (`LD_LIBRARY_PATH`, the ld.so cache, the default directories). `ort` first tries this name
/// in the running program's own directory.
pub const SYSTEM_LIBRARY: &str = "libonnxruntime.so.1";

static ENVIRONMENT: Mutex<Option<ort::environment::Environment>> = Mutex::new(None);

/// Which ONNX Runtime library to load: `$ORT_DYLIB_PATH` (which must exist), else the path
/// fixed at build time when that file exists, else [`SYSTEM_LIBRARY`]. Returns the path and
/// where it came from, for errors.
pub fn library_path() -> Result<(PathBuf, &'static str)> {
    if let Some(p) = std::env::var_os(ORT_DYLIB_ENV).filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        // Made absolute here: `ort` would look for a relative path beside the program first.
        let abs = std::fs::canonicalize(&p).with_context(|| {
            format!(
                "{ORT_DYLIB_ENV}={} does not exist; fix: point it at libonnxruntime.so.{ORT_VERSION} \
                 (tools/setup.sh installs it in .ort/onnxruntime/capi/), or unset it",
                p.display()
            )
        })?;
        return Ok((abs, ORT_DYLIB_ENV));
    }
    let built = Path::new(BUILD_TIME_LIBRARY);
    if built.is_file() {
        return Ok((built.to_path_buf(), "the path fixed at build time"));
    }
    Ok((PathBuf::from(SYSTEM_LIBRARY), "the system library path"))
}

/// Loads the ONNX Runtime library once per process and returns the shared environment.
///
/// Errors name the file that was tried and the fix, because "library not found" is the first
/// thing a new user meets.
pub fn environment() -> Result<ort::environment::Environment> {
    let mut guard = ENVIRONMENT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(env) = guard.as_ref() {
        return Ok(env.clone());
    }
    let (path, origin) = library_path()?;
    let builder = ort::init_from(&path).map_err(|e| {
        anyhow!(
            "could not load the ONNX Runtime library {} (from {origin}): {e}; fix: run \
             tools/setup.sh and rebuild (it installs ONNX Runtime {ORT_VERSION} where the build \
             looks: {BUILD_TIME_LIBRARY}), set {ORT_DYLIB_ENV} to the full path of \
             libonnxruntime.so.{ORT_VERSION}, or install ONNX Runtime {ORT_VERSION} as \
             {SYSTEM_LIBRARY} on the library path",
            path.display()
        )
    })?;
    // One intra-op thread pool for every session of the process (one thread per core, no
    // spinning): elements sharing the CPU do not oversubscribe it, and loading a pack again
    // (every NULL->READY) does not create and destroy threads.
    let pool = ort::environment::GlobalThreadPoolOptions::default()
        .with_intra_threads(0)
        .and_then(|p| p.with_spin_control(false))
        .map_err(|e| anyhow!("could not configure ONNX Runtime's thread pool: {e}"))?;
    let env = builder
        .with_name("gst-dawn")
        .with_global_thread_pool(pool)
        .build()
        .map_err(|e| anyhow!("could not create the ONNX Runtime environment: {e}"))?;
    *guard = Some(env.clone());
    Ok(env)
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
                         of ONNX Runtime (tools/setup.sh --gpu: onnxruntime-gpu {ORT_VERSION} with CUDA \
                         13 and cuDNN 9 on the library path), or use execution-provider=cpu",
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

    /// Creates a session for one graph file on the resolved provider. The file must be a
    /// regular file ([`files::check_regular`]: ONNX Runtime would block on a FIFO).
    pub fn session(&self, path: &Path) -> Result<Session> {
        Ok(self.graph_session(path)?.0)
    }

    /// Creates a session and, with [`RuntimeConfig::log_placement`], its node placement.
    pub fn graph_session(&self, path: &Path) -> Result<(Session, Placement)> {
        files::check_regular(path, "ONNX graph", MAX_GRAPH_BYTES)?;
        let log = self.config.log_placement.then(PlacementLog::default);
        let session = build_session(&self.env, &self.config, self.resolved, path, log.as_ref())
            .map_err(|e| anyhow!("{e}"))
            .with_context(|| format!("could not load ONNX graph {}", path.display()))?;
        Ok((session, log.map(|l| l.take()).unwrap_or_default()))
    }

    /// Creates a session that always runs on the CPU (small graphs such as the face models,
    /// where a GPU round trip costs more than it saves).
    pub fn cpu_session(&self, path: &Path) -> Result<Session> {
        files::check_regular(path, "ONNX graph", MAX_GRAPH_BYTES)?;
        build_session(&self.env, &self.config, Provider::Cpu, path, None)
            .map_err(|e| anyhow!("{e}"))
            .with_context(|| format!("could not load ONNX graph {}", path.display()))
    }

    /// As [`Runtime::cpu_session`], from a graph held in memory (the face models built into
    /// the plugin); `name` appears in errors.
    pub fn cpu_session_from_memory(&self, name: &str, model: &[u8]) -> Result<Session> {
        session_builder(&self.env, &self.config, Provider::Cpu)
            .and_then(|mut b| b.commit_from_memory(model))
            .map_err(|e| anyhow!("{e}"))
            .with_context(|| format!("could not load the built-in ONNX graph {name}"))
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
    placement: Option<&PlacementLog>,
) -> ort::Result<Session> {
    let mut builder = session_builder(env, config, provider)?;
    if let Some(log) = placement {
        builder = builder
            .with_log_level(LogLevel::Verbose)?
            .with_logger(log.logger())?;
    }
    let session = builder.commit_from_file(path)?;
    if let Some(log) = placement {
        log.close();
    }
    Ok(session)
}

/// Collects the placement report from a session's verbose log while it is created; messages
/// after that (each run logs at verbose level too) are dropped unread.
#[derive(Default, Clone)]
struct PlacementLog {
    inner: Arc<Mutex<(Placement, bool)>>,
}

impl PlacementLog {
    fn logger(&self) -> ort::logging::LoggerFunction {
        let inner = self.inner.clone();
        Arc::new(move |_level, _category, _id, _location, message: &str| {
            let mut g = inner.lock().unwrap_or_else(|e| e.into_inner());
            if !g.1 {
                g.0.feed(message);
            }
        })
    }

    fn close(&self) {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).1 = true;
    }

    fn take(&self) -> Placement {
        std::mem::take(&mut self.inner.lock().unwrap_or_else(|e| e.into_inner()).0)
    }
}

/// A session builder with the engine's settings and `provider` registered.
fn session_builder(
    env: &ort::environment::Environment,
    config: &RuntimeConfig,
    provider: Provider,
) -> ort::Result<SessionBuilder> {
    let mut builder =
        Session::builder(env)?.with_optimization_level(GraphOptimizationLevel::Level3)?;
    if config.intra_threads > 0 {
        // An explicit thread count (benchmarks) gets a pool of its own.
        builder = builder
            .with_independent_thread_pool()?
            .with_intra_threads(config.intra_threads)?
            // Spinning intra-op threads keep burning cores after a run returns, which starves
            // the host code between denoiser steps (and everything else on small machines).
            .with_intra_op_spinning(false)?;
    }
    let mut builder = builder
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
    Ok(builder)
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
    placement: Placement,
    /// The engine's turn queue, when several streams may share the graph.
    turns: Option<Arc<Turns>>,
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
            placement: Placement::default(),
            turns: None,
        }
    }

    /// Makes every call take its turn in `turns` (shared by all graphs of one engine).
    pub fn with_turns(mut self, turns: Arc<Turns>) -> Self {
        self.turns = Some(turns);
        self
    }

    /// Records where ONNX Runtime placed the nodes ([`Runtime::graph_session`]).
    pub fn with_placement(mut self, placement: Placement) -> Self {
        self.placement = placement;
        self
    }

    /// Node placement, known when the runtime was configured with `log_placement`.
    pub fn placement(&self) -> &Placement {
        &self.placement
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

    /// Runs `f` with the locked session and accounts the time it took. The session's runs use
    /// the current thread's cancellation switch ([`super::cancel::Cancel::enter`]).
    pub fn with_session<T>(&self, f: impl FnOnce(&mut Runner<'_>) -> Result<T>) -> Result<T> {
        let turn = match &self.turns {
            Some(t) => Some(t.take()?),
            None => None,
        };
        let mut session = self.session.lock().unwrap_or_else(|e| e.into_inner());
        let start = Instant::now();
        let out = super::cancel::with_options(|options| {
            f(&mut Runner {
                session: &mut session,
                options,
            })
        })
        .and_then(|r| r);
        let elapsed = start.elapsed();
        drop(session);
        let waited = turn.map(|t| t.waited).unwrap_or_default();
        THREAD_TIMES.with(|c| c.borrow_mut().add(self.name, elapsed, waited));
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

/// Time the current thread spent in each graph (by name) and waiting for turns: a stream's
/// own stage times, whatever other streams on the same engine do meanwhile.
#[derive(Debug, Default, Clone)]
pub struct ThreadTimes {
    graphs: Vec<(&'static str, Duration)>,
    pub waited: Duration,
}

impl ThreadTimes {
    fn add(&mut self, name: &'static str, run: Duration, waited: Duration) {
        self.waited += waited;
        match self.graphs.iter_mut().find(|(n, _)| *n == name) {
            Some((_, d)) => *d += run,
            None => self.graphs.push((name, run)),
        }
    }

    /// Time spent in the graph called `name`.
    pub fn graph(&self, name: &str) -> Duration {
        self.graphs
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(Duration::ZERO, |(_, d)| *d)
    }

    /// The current thread's times so far.
    pub fn current() -> Self {
        THREAD_TIMES.with(|c| c.borrow().clone())
    }
}

thread_local! {
    static THREAD_TIMES: std::cell::RefCell<ThreadTimes> = std::cell::RefCell::new(ThreadTimes::default());
}

/// A locked session whose runs can be cancelled from another thread.
pub struct Runner<'a> {
    session: &'a mut Session,
    options: &'a RunOptions,
}

impl Runner<'_> {
    pub fn run<'i, 'v: 'i, const N: usize>(
        &mut self,
        inputs: impl Into<SessionInputs<'i, 'v, N>>,
    ) -> ort::Result<SessionOutputs<'_>> {
        self.session.run_with_options(inputs, self.options)
    }

    pub fn run_binding<'b>(
        &'b mut self,
        binding: &'b IoBinding,
    ) -> ort::Result<SessionOutputs<'b>> {
        self.session.run_binding_with_options(binding, self.options)
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
