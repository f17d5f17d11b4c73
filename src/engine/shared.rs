//! One loaded engine per model pack and runtime settings in a process. Several avatars (a
//! compositor of speakers, a server with several streams) then share one set of sessions,
//! weights and CUDA context instead of loading their own: memory does not grow with every
//! element. Each stream keeps its own state ([`super::Stream`]); chunks of different streams
//! take turns on the shared engine ([`super::turns`]).
//!
//! The registry holds engines weakly: an engine lives while some user holds its `Arc` and is
//! released when the last one drops it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

use anyhow::Result;

use super::Engine;
use super::runtime::RuntimeConfig;

/// What makes two engines interchangeable: the same pack directory (canonical path) and the
/// same runtime settings (provider, device, TensorRT options, threads).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EngineKey {
    pub pack: PathBuf,
    pub config: RuntimeConfig,
}

impl EngineKey {
    pub fn new(dir: &Path, config: &RuntimeConfig) -> Self {
        // A pack that cannot be resolved is keyed as given; loading it reports the problem.
        let pack = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
        Self {
            pack,
            config: config.clone(),
        }
    }
}

/// One key's engine. Its own mutex, so that loading one pack does not hold up users of
/// another, and two users of the same pack wait for one load instead of making two.
type Slot = Arc<Mutex<Weak<Engine>>>;

#[derive(Debug, Default)]
pub struct EngineRegistry {
    slots: Mutex<Vec<(EngineKey, Slot)>>,
    loads: Mutex<u64>,
}

static GLOBAL: EngineRegistry = EngineRegistry::new();

/// The process-wide registry's engine for this pack and configuration, loaded if no user holds
/// one. `progress` is only called when the engine is loaded.
pub fn shared_engine(
    dir: &Path,
    config: RuntimeConfig,
    progress: &mut dyn FnMut(&str),
) -> Result<Arc<Engine>> {
    EngineRegistry::global().get_or_load(dir, config, progress)
}

impl EngineRegistry {
    pub const fn new() -> Self {
        Self {
            slots: Mutex::new(Vec::new()),
            loads: Mutex::new(0),
        }
    }

    /// The registry the element uses.
    pub fn global() -> &'static EngineRegistry {
        &GLOBAL
    }

    /// The live engine for this key, or a newly loaded one.
    pub fn get_or_load(
        &self,
        dir: &Path,
        config: RuntimeConfig,
        progress: &mut dyn FnMut(&str),
    ) -> Result<Arc<Engine>> {
        let key = EngineKey::new(dir, &config);
        let slot = self.slot(&key);
        let mut weak = slot.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(engine) = weak.upgrade() {
            progress("sharing the already loaded model pack");
            return Ok(engine);
        }
        let engine = Arc::new(Engine::load(dir, config, progress)?);
        *weak = Arc::downgrade(&engine);
        *self.loads.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        Ok(engine)
    }

    /// Engines currently alive (held by at least one user).
    pub fn live_engines(&self) -> usize {
        let slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots
            .iter()
            .filter(|(_, slot)| {
                slot.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .strong_count()
                    > 0
            })
            .count()
    }

    /// Engines loaded so far (each load creates one session per graph of the pack).
    pub fn loads(&self) -> u64 {
        *self.loads.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// This key's slot, created if needed; slots whose engine was released and that nobody is
    /// loading into are forgotten on the way.
    fn slot(&self, key: &EngineKey) -> Slot {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.retain(|(_, slot)| {
            Arc::strong_count(slot) > 1
                || slot
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .strong_count()
                    > 0
        });
        if let Some((_, slot)) = slots.iter().find(|(k, _)| k == key) {
            return slot.clone();
        }
        let slot = Slot::default();
        slots.push((key.clone(), slot.clone()));
        slot
    }
}
