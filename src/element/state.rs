//! The element's one state, shared by its threads behind one mutex with one condition
//! variable ([`Shared`]). See `docs/element.md` for who reads and writes what.
//!
//! [`State`] lives from READY→PAUSED to PAUSED→READY; the per-stream part ([`StreamState`])
//! is replaced by [`State::reset`], the one reset path used by start, FLUSH_STOP, a new
//! segment and stop.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use ringbuf::HeapRb;

use super::portrait_loader::Face;
use super::timeline::Timeline;
use crate::engine::{Cancel, Engine, StageTimes, StreamConfig};
use crate::portrait::Compositor;

/// Audio ring capacity (16 kHz samples waiting for the worker): 30 s. A full ring blocks the
/// streaming thread (back-pressure) until the worker takes audio.
pub const RING_SAMPLES: usize = 30 * 16_000;

/// A generated face (packed RGB8) and, for full-portrait output, the compositor that shows it.
#[derive(Clone)]
pub struct Shown {
    pub rgb: Arc<Vec<u8>>,
    pub compositor: Option<Arc<Compositor>>,
}

/// What the worker hands the video task.
pub enum OutItem {
    Frame { index: u64, frame: Shown },
    Eos,
}

/// What the audio pass-through pad carries, in arrival order.
pub enum PassItem {
    /// A buffer and the timeline position (input samples) its end reaches: it is released once
    /// the video covers that position.
    Buffer {
        buffer: gst::Buffer,
        end: u64,
    },
    /// A serialized event (caps, segment, tags) kept in order with the buffers.
    Event(gst::Event),
    Eos,
}

/// How a stream runs, decided at its first data.
#[derive(Debug, Clone, Copy)]
pub struct Setup {
    pub live: bool,
    pub config: StreamConfig,
    /// Upstream's minimum latency (live): audio captured at running time t arrives by then.
    pub upstream_latency: gst::ClockTime,
    /// The latency this element adds (the audio a chunk waits for plus the processing
    /// budget): no frame is due earlier than upstream's latency plus this.
    pub own_latency: gst::ClockTime,
    pub seed: u64,
    /// Live degradation floor (min-sampling-steps).
    pub min_steps: usize,
    /// Frames the worker may queue ahead of the video task.
    pub queue_limit: usize,
}

/// Counters behind the statistics properties (per element; reset at start).
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
    /// Index of the last repeated frame (live degradation rung).
    pub last_repeat: Option<u64>,
    pub chunks: u64,
    pub times: StageTimes,
}

impl Stats {
    /// "full", "reduced-steps" (fewer sampling steps than asked), or "repeating" (frames
    /// repeated within the last second before `next_frame`).
    pub fn rung(&self, next_frame: u64) -> &'static str {
        if self
            .last_repeat
            .is_some_and(|r| next_frame.saturating_sub(r) <= 25)
        {
            "repeating"
        } else if self.current_steps > 0 && self.current_steps < self.max_steps {
            "reduced-steps"
        } else {
            "full"
        }
    }
}

/// Everything about one stream, from its first data to its end (or a flush).
pub struct StreamState {
    pub setup: Option<Setup>,
    /// The input segment (TIME).
    pub segment: Option<gst::FormattedSegment<gst::ClockTime>>,
    pub timeline: Timeline,
    /// 16 kHz samples ever put into the ring.
    pub ring_written: u64,
    /// EOS reached the sink pad: the worker finishes the stream once the ring is empty.
    pub input_eos: bool,
    /// Non-live GAP: the timeline may be filled with silence up to here at EOS (bounded by the
    /// segment's stop, so a GAP claiming 100 hours does not make 100 hours of video).
    pub gap_end: u64,
    /// Frames the worker made, waiting for the video task.
    pub frames: VecDeque<OutItem>,
    /// Frames generated so far (index of the next one the worker will make).
    pub generated: u64,
    /// Frames of the whole stream, once EOS made it known.
    pub total_frames: Option<u64>,
    /// The one frame index: the next frame the video task shows (pushed or repeated).
    pub next_frame: u64,
    /// The last frame shown, repeated when inference is late.
    pub last_shown: Option<Shown>,
    pub pass: VecDeque<PassItem>,
    /// Video events sent for this stream.
    pub video_started: bool,
    pub video_segment: Option<gst::FormattedSegment<gst::ClockTime>>,
    /// Serialized sticky events (tags) for the video pad, pushed before the next frame.
    pub video_events: Vec<gst::Event>,
    pub video_eos: bool,
    /// Stream time reached by the audio pass-through pad (its position query).
    pub audio_position: Option<gst::ClockTime>,
    /// Live, before any data: upstream was asked whether it is live (the prelude needs it).
    pub prelude_checked: bool,
    /// A sample that was NaN or infinite was replaced by 0 (warned once per stream).
    pub warned_non_finite: bool,
    /// Live lateness: frames repeated in the current episode (0 = on time).
    pub late_episode: u64,
    /// The frame after which an episode counts as over.
    pub late_until: u64,
}

impl StreamState {
    fn new() -> Self {
        Self {
            setup: None,
            segment: None,
            timeline: Timeline::new(16_000),
            ring_written: 0,
            input_eos: false,
            gap_end: 0,
            frames: VecDeque::new(),
            generated: 0,
            total_frames: None,
            next_frame: 0,
            last_shown: None,
            pass: VecDeque::new(),
            video_started: false,
            video_segment: None,
            video_events: Vec::new(),
            video_eos: false,
            audio_position: None,
            prelude_checked: false,
            warned_non_finite: false,
            late_episode: 0,
            late_until: 0,
        }
    }

    pub fn live(&self) -> bool {
        self.setup.is_some_and(|s| s.live)
    }

    /// Frames the video covers so far (generated or shown): audio up to there may be released.
    pub fn covered_frames(&self) -> u64 {
        self.generated.max(self.next_frame)
    }
}

/// What the element loaded in NULL→READY and keeps until READY→NULL.
#[derive(Clone)]
pub struct Loaded {
    pub engine: Arc<Engine>,
    pub face_models: Arc<crate::portrait::FaceModels>,
    /// Full-portrait output: the size fixed at load, which every portrait is composed at.
    pub output_size: Option<(u32, u32)>,
}

pub struct State {
    pub loaded: Option<Loaded>,
    /// The portrait the worker animates, and the crop shown before the first generated frame.
    pub face: Option<Face>,
    pub still: Option<Shown>,
    /// Portrait requests: the newest one wins, whatever order the analyses finish in.
    pub portrait_requested: u64,
    pub portrait_applied: u64,
    /// A new portrait for the worker to take at its next chunk.
    pub pending_face: Option<Face>,

    /// Bumped by every reset: results of an older stream are dropped.
    pub generation: u64,
    pub flushing: bool,
    /// Set when the element leaves PAUSED: every thread returns.
    pub stopping: bool,
    pub worker: Option<JoinHandle<()>>,
    pub cancel: Option<Arc<Cancel>>,
    /// The clock wait the video task is in, unscheduled by flush, stop and new frames.
    pub clock_wait: Option<gst::SingleShotClockId>,
    /// Pipeline latency from the LATENCY event: present only when a sink syncs to the clock,
    /// which is when frames have deadlines.
    pub latency: Option<gst::ClockTime>,
    /// Whether any sink of the pipeline syncs to the clock (asked once per LATENCY event): a
    /// live source recorded to a file has no deadlines, and no frame is ever repeated.
    pub downstream_syncs: Option<bool>,
    /// Input audio caps (sticky: they survive flushes).
    pub audio_info: Option<gst_audio::AudioInfo>,
    /// The negotiated video format (kept across flushes; renegotiated on RECONFIGURE).
    pub video_info: Option<(gst_video::VideoInfo, crate::engine::pixels::PixelFormat)>,
    /// A fatal worker error (posted once; the streaming thread returns an error).
    pub error: bool,
    pub flow: gst_base::UniqueFlowCombiner,
    /// The last combined result of both src pads, returned upstream by the chain function.
    pub flow_result: Result<gst::FlowSuccess, gst::FlowError>,
    /// The seqnum of the last seek forwarded upstream (both src pads get the same seek).
    pub last_seek: Option<gst::Seqnum>,
    pub stats: Stats,
    /// 16 kHz mono samples of the stream for the worker (allocated once, cleared by reset).
    pub ring: Box<HeapRb<f32>>,
    pub stream: StreamState,
}

impl State {
    pub fn new() -> Self {
        Self {
            loaded: None,
            face: None,
            still: None,
            portrait_requested: 0,
            portrait_applied: 0,
            pending_face: None,
            generation: 0,
            flushing: false,
            stopping: false,
            worker: None,
            cancel: None,
            clock_wait: None,
            latency: None,
            downstream_syncs: None,
            audio_info: None,
            video_info: None,
            error: false,
            flow: gst_base::UniqueFlowCombiner::new(),
            flow_result: Ok(gst::FlowSuccess::Ok),
            last_seek: None,
            stats: Stats::default(),
            ring: Box::new(HeapRb::new(RING_SAMPLES)),
            stream: StreamState::new(),
        }
    }

    /// The one reset path: forgets the stream (audio, frames, timeline, events) and starts a
    /// new generation, keeping what was loaded, the portrait and the statistics.
    pub fn reset(&mut self) {
        self.ring.clear();
        self.stream = StreamState::new();
        self.generation += 1;
        self.error = false;
        self.flow.reset();
        self.flow_result = Ok(gst::FlowSuccess::Ok);
    }

    /// Frames have deadlines: the pipeline is live and a sink syncs to the clock.
    pub fn paced(&self) -> bool {
        self.latency.is_some() && self.downstream_syncs == Some(true) && self.stream.live()
    }

    /// The clock wait to unschedule after the lock is released.
    pub fn take_clock_wait(&mut self) -> Option<gst::SingleShotClockId> {
        self.clock_wait.take()
    }
}

/// The state and its condition variable. Lock order: the element's `Settings` mutex, then this
/// one; never the reverse, and never held across a pad push, an event push, a peer query, a
/// clock wait, a model run, a message post or a thread join.
pub struct Shared {
    state: Mutex<State>,
    cond: Condvar,
}

impl Default for Shared {
    fn default() -> Self {
        Self {
            state: Mutex::new(State::new()),
            cond: Condvar::new(),
        }
    }
}

impl Shared {
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wakes every waiting thread (the state changed).
    pub fn notify(&self) {
        self.cond.notify_all();
    }

    pub fn wait<'a>(&self, guard: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        self.cond.wait(guard).unwrap_or_else(|e| e.into_inner())
    }
}
