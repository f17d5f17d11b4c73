//! Cancelling a stream's model runs from another thread (a flush, a seek, a state change to
//! NULL): a running ONNX Runtime call returns within one graph node instead of finishing a
//! chunk that takes minutes on the CPU.
//!
//! A [`Cancel`] is entered on the thread that runs the models ([`Cancel::enter`]); every graph
//! run on that thread while the scope lives uses its run options, so the engine's call sites
//! need no extra argument.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use anyhow::{Result, anyhow};
use ort::session::RunOptions;

/// The error a cancelled run ends with (after the engine's context is added, check
/// [`Cancel::is_cancelled`] rather than matching the message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cancelled;

impl std::fmt::Display for Cancelled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("cancelled")
    }
}

impl std::error::Error for Cancelled {}

/// One stream's cancellation switch.
pub struct Cancel {
    options: RunOptions,
    cancelled: AtomicBool,
}

impl std::fmt::Debug for Cancel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cancel")
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}

thread_local! {
    static CURRENT: RefCell<Option<Arc<Cancel>>> = const { RefCell::new(None) };
}

impl Cancel {
    /// Needs the ONNX Runtime library loaded ([`super::runtime::environment`]).
    pub fn new() -> Result<Arc<Self>> {
        let options = RunOptions::new().map_err(|e| anyhow!("creating run options: {e}"))?;
        Ok(Arc::new(Self {
            options,
            cancelled: AtomicBool::new(false),
        }))
    }

    /// Terminates the running call (if any) and makes every later one fail until
    /// [`Cancel::reset`]. Safe from any thread.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
        let _ = self.options.terminate();
    }

    /// Lets runs proceed again (a new stream after a flush).
    pub fn reset(&self) {
        let _ = self.options.unterminate();
        self.cancelled.store(false, Ordering::SeqCst);
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }

    /// Makes this switch govern every graph run on the current thread until the guard drops.
    pub fn enter(self: &Arc<Self>) -> Scope {
        let previous = CURRENT.with(|c| c.replace(Some(self.clone())));
        Scope { previous }
    }
}

/// Restores the previous switch of the thread when dropped.
pub struct Scope {
    previous: Option<Arc<Cancel>>,
}

impl Drop for Scope {
    fn drop(&mut self) {
        let previous = self.previous.take();
        CURRENT.with(|c| *c.borrow_mut() = previous);
    }
}

/// Fails with [`Cancelled`] when the current thread's switch is off (checked between the steps
/// of long loops, where no graph call would notice).
pub fn check() -> Result<()> {
    let cancelled = CURRENT.with(|c| c.borrow().as_ref().is_some_and(|c| c.is_cancelled()));
    if cancelled {
        Err(Cancelled.into())
    } else {
        Ok(())
    }
}

/// Runs `f` with the run options of the current thread's switch, or with options that are
/// never terminated outside any scope.
pub(crate) fn with_options<T>(f: impl FnOnce(&RunOptions) -> T) -> Result<T> {
    let current = CURRENT.with(|c| c.borrow().clone());
    match current {
        Some(c) => Ok(f(&c.options)),
        None => {
            static DEFAULT: OnceLock<RunOptions> = OnceLock::new();
            if DEFAULT.get().is_none() {
                let options =
                    RunOptions::new().map_err(|e| anyhow!("creating run options: {e}"))?;
                let _ = DEFAULT.set(options);
            }
            Ok(f(DEFAULT.get().expect("set above")))
        }
    }
}
