//! State shared by the element's three threads: the streaming thread (sink pad: audio in),
//! the inference worker, and the src pad task (frames out). One mutex, locked briefly; never
//! held across a model run or a pad push.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use ringbuf::HeapCons;

use super::portrait_loader::Face;
use crate::engine::{StageTimes, StreamConfig};
use crate::portrait::Compositor;

/// A generated frame (packed RGB8 at the pack resolution), or the end of the stream.
#[derive(Debug, Clone)]
pub enum OutItem {
    Frame {
        index: u64,
        rgb: Arc<Vec<u8>>,
        /// Full-portrait output: the compositor of the portrait this frame was made from.
        compositor: Option<Arc<Compositor>>,
    },
    Eos,
}

/// Counters behind the read-only statistics properties.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    pub frames_generated: u64,
    pub frames_pushed: u64,
    pub frames_repeated: u64,
    pub frames_dropped: u64,
    pub last_rtf: f64,
    pub current_steps: u32,
    /// Steps asked for (sampling-steps or the pack's default).
    pub max_steps: u32,
    /// Index of the last repeated frame and of the next frame to show (live degradation rung).
    pub last_repeat: Option<u64>,
    pub next_frame: u64,
    pub chunks: u64,
    pub times: StageTimes,
}

pub struct SharedState {
    /// Consumer half of the audio ring buffer (the producer belongs to the streaming thread).
    pub audio: Option<Box<HeapCons<f32>>>,
    /// Bumped on every flush: the worker starts a new stream, stale results are dropped.
    pub generation: u64,
    pub flushing: bool,
    /// Set when the element leaves PAUSED: every thread returns.
    pub stopping: bool,
    /// EOS reached the sink pad after all audio was queued.
    pub input_eos: bool,
    /// Stream settings, known once the first buffer tells whether upstream is live.
    pub stream_config: Option<StreamConfig>,
    pub live: bool,
    pub seed: u64,
    pub min_steps: u32,
    /// Frames waiting for the src task.
    pub queue: VecDeque<OutItem>,
    pub queue_limit: usize,
    /// Frames with an index below this were already shown (pushed or repeated): the worker
    /// may skip chunks that would only produce such frames.
    pub shown_before: u64,
    /// Live: the pacer found the audio overdue up to this sample position; the worker fills
    /// the stream with silence up to it so the avatar keeps moving (idle motion).
    pub silence_until: u64,
    /// Samples of such silence the worker inserted (the streaming thread counts them in its
    /// timeline, so late audio for those positions is dropped rather than shifting sync).
    pub silence_inserted: u64,
    /// The streaming thread is between reading the timeline and writing into the ring: the
    /// worker must not insert silence then.
    pub chain_busy: bool,
    /// Frames in the whole stream, once EOS made it known: the pacer never repeats beyond.
    pub total_frames: Option<u64>,
    /// A new portrait for the worker to switch to at the next chunk.
    pub pending_face: Option<Face>,
    /// A fatal error from the worker, for the src task to post.
    pub error: Option<String>,
    /// The last downstream flow result, returned upstream by the chain function.
    pub flow: Result<gst::FlowSuccess, gst::FlowError>,
    pub stats: Stats,
}

impl Stats {
    /// Where live degradation stands: "full" quality, "reduced-steps" (fewer sampling steps
    /// than asked), or "repeating" (frames repeated within the last second).
    pub fn rung(&self) -> &'static str {
        if self
            .last_repeat
            .is_some_and(|r| self.next_frame.saturating_sub(r) <= 25)
        {
            "repeating"
        } else if self.current_steps > 0 && self.current_steps < self.max_steps {
            "reduced-steps"
        } else {
            "full"
        }
    }
}

impl Default for SharedState {
    fn default() -> Self {
        Self {
            audio: None,
            generation: 0,
            flushing: false,
            stopping: false,
            input_eos: false,
            stream_config: None,
            live: false,
            seed: 0,
            min_steps: 1,
            queue: VecDeque::new(),
            queue_limit: 1,
            shown_before: 0,
            silence_until: 0,
            silence_inserted: 0,
            chain_busy: false,
            total_frames: None,
            pending_face: None,
            error: None,
            flow: Ok(gst::FlowSuccess::Ok),
            stats: Stats::default(),
        }
    }
}

#[derive(Default)]
pub struct Shared {
    state: Mutex<SharedState>,
    pub cond: Condvar,
}

impl Shared {
    pub fn lock(&self) -> MutexGuard<'_, SharedState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wakes every waiting thread.
    pub fn notify(&self) {
        self.cond.notify_all();
    }

    pub fn wait<'a>(&self, guard: MutexGuard<'a, SharedState>) -> MutexGuard<'a, SharedState> {
        self.cond.wait(guard).unwrap_or_else(|e| e.into_inner())
    }

    pub fn wait_timeout<'a>(
        &self,
        guard: MutexGuard<'a, SharedState>,
        timeout: std::time::Duration,
    ) -> MutexGuard<'a, SharedState> {
        self.cond
            .wait_timeout(guard, timeout)
            .unwrap_or_else(|e| e.into_inner())
            .0
    }
}
