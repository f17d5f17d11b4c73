//! `dawnavatar`: live speech plus one portrait in, a talking-head video out.
//!
//! A thin adapter around [`crate::engine`]: pads, caps, properties, events, latency and
//! timestamps. Three threads cooperate through [`Shared`]:
//! - the streaming thread (sink pad) converts audio to 16 kHz mono floats and writes them into
//!   a bounded ring buffer; it blocks only when the ring is full (back-pressure);
//! - the inference worker ([`Worker`]) runs chunks through the engine off any pad thread;
//! - the src pad task pushes frames downstream with timestamps from the audio timeline and, in
//!   a live pipeline, repeats the last frame when a frame's deadline passes before it is ready,
//!   so a virtual camera never stalls.

use std::path::PathBuf;
use std::sync::{Arc, LazyLock, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_video::prelude::*;
use ringbuf::HeapRb;
use ringbuf::traits::{Consumer, Observer, Producer, Split};

use super::portrait_loader::{self, Face, LoadedPortrait};
use super::settings::*;
use super::shared::{OutItem, Shared, SharedState};
use super::worker::Worker;
use crate::engine::pack::{FPS, SAMPLE_RATE};
use crate::engine::pixels::{self, PixelFormat};
use crate::engine::{Engine, StreamConfig};
use crate::portrait::{Compositor, FaceModels};

pub(crate) static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "dawnavatar",
        gst::DebugColorFlags::empty(),
        Some("DAWN talking-head avatar"),
    )
});

/// One video frame lasts 40 ms (DAWN runs at 25 fps).
const FRAME_DURATION: gst::ClockTime = gst::ClockTime::from_mseconds(1000 / FPS as u64);
/// Audio ring buffer capacity: 30 s at 16 kHz.
const RING_SECONDS: usize = 30;
/// Timestamp jumps larger than this are gaps (filled with silence) or overlaps (dropped).
const DISCONT_TOLERANCE: gst::ClockTime = gst::ClockTime::from_mseconds(20);

/// What the element holds between NULL→READY and READY→NULL.
#[derive(Default)]
struct Loaded {
    engine: Option<Arc<Engine>>,
    face_models: Option<Arc<FaceModels>>,
    face: Option<Face>,
    /// The portrait crop as RGB8: the frame shown before the first generated one.
    still: Option<Arc<Vec<u8>>>,
}

/// Streaming-thread state (sink side).
#[derive(Default)]
struct Input {
    format: Option<gst_audio::AudioFormat>,
    producer: Option<Box<ringbuf::HeapProd<f32>>>,
    /// Samples written into the stream so far (including silence for gaps).
    written: u64,
    /// PTS of sample 0 of the stream.
    base_pts: Option<gst::ClockTime>,
    segment: Option<gst::FormattedSegment<gst::ClockTime>>,
    /// Upstream's minimum latency (live), from the latency query at the first buffer.
    upstream_latency: gst::ClockTime,
    configured: bool,
    /// Scratch for sample conversion.
    samples: Vec<f32>,
}

/// A generated face (RGB8) and, for full-portrait output, the compositor that shows it.
type ShownFrame = (Arc<Vec<u8>>, Option<Arc<Compositor>>);

/// Src-task state (output side).
#[derive(Default)]
struct Output {
    info: Option<gst_video::VideoInfo>,
    format: Option<PixelFormat>,
    /// Index of the next frame to show.
    next_index: u64,
    /// The last frame shown (repeated when inference is late).
    last: Option<ShownFrame>,
    /// Scratch for full-portrait composition.
    composed: Vec<u8>,
    sent_stream_start: bool,
    sent_segment: bool,
    warned_late: bool,
    /// Pipeline latency from the sink's LATENCY event.
    pipeline_latency: Option<gst::ClockTime>,
}

pub struct DawnAvatar {
    sinkpad: gst::Pad,
    srcpad: gst::Pad,
    settings: Mutex<Settings>,
    loaded: Mutex<Loaded>,
    input: Mutex<Input>,
    output: Mutex<Output>,
    shared: Arc<Shared>,
    /// Sticky events from upstream that the src task forwards in order.
    upstream: Mutex<Upstream>,
    worker: Mutex<Option<JoinHandle<()>>>,
}

#[derive(Default)]
struct Upstream {
    stream_start: Option<gst::Event>,
    segment: Option<gst::Event>,
}

impl DawnAvatar {
    // ----------------------------------------------------------------- loading (NULL→READY)

    fn post_progress(&self, kind: gst::ProgressType, text: &str) {
        let msg = gst::message::Progress::builder(kind, "load", text)
            .src(&*self.obj())
            .build();
        let _ = self.obj().post_message(msg);
    }

    /// Loads the model pack and the portrait. Runs on the thread that changes the state, never
    /// on a streaming thread.
    fn load(&self) -> Result<(), gst::ErrorMessage> {
        let settings = self.settings.lock().unwrap().clone();
        let Some(model_path) = settings.model_path.clone() else {
            return Err(gst::error_msg!(
                gst::ResourceError::NotFound,
                ("The model-path property is not set; fix: set model-path to a DAWN model pack directory (tests/models/tiny128 is the untrained test pack; docs/exporter.md makes a real one)")
            ));
        };
        let Some(image) = settings.image.clone() else {
            return Err(gst::error_msg!(
                gst::ResourceError::NotFound,
                ("The image property is not set; fix: set image to a portrait (PNG or JPEG)")
            ));
        };
        self.post_progress(
            gst::ProgressType::Start,
            &format!("Loading DAWN model pack {}", model_path.display()),
        );
        let mut step = |text: &str| self.post_progress(gst::ProgressType::Continue, text);
        let engine = match Engine::load(&model_path, settings.runtime_config(), &mut step) {
            Ok(e) => Arc::new(e),
            Err(e) => {
                self.post_progress(gst::ProgressType::Error, "Loading the model pack failed");
                return Err(gst::error_msg!(gst::LibraryError::Init, ("{:#}", e)));
            }
        };
        for w in engine.runtime.warnings() {
            gst::warning!(CAT, imp = self, "{w}");
            let msg = gst::message::Warning::builder(gst::LibraryError::Settings, w)
                .src(&*self.obj())
                .build();
            let _ = self.obj().post_message(msg);
        }
        gst::info!(
            CAT,
            imp = self,
            "model pack {} loaded on {} ({}x{}, {} steps)",
            model_path.display(),
            engine.runtime.provider(),
            engine.resolution(),
            engine.resolution(),
            engine.default_steps()
        );
        let face_models = match portrait_loader::load_face_models(&engine.runtime, &settings) {
            Ok(m) => m,
            Err(e) => {
                self.post_progress(gst::ProgressType::Error, "Loading the face models failed");
                return Err(gst::error_msg!(gst::ResourceError::NotFound, ("{:#}", e)));
            }
        };
        let portrait = self
            .load_portrait(&engine, face_models.as_deref(), &settings, &image, None)
            .map_err(|e| {
                self.post_progress(gst::ProgressType::Error, "Loading the portrait failed");
                gst::error_msg!(gst::ResourceError::OpenRead, ("{}", e))
            })?;
        // The first call at a new shape is much slower in ONNX Runtime: pay it now.
        let live_cfg = settings.chunking(true, engine.resolution(), None);
        let warm = live_cfg.context + live_cfg.chunk + live_cfg.lookahead;
        if let Err(e) = engine.warm_up(&portrait.face.avatar, warm) {
            return Err(gst::error_msg!(
                gst::LibraryError::Failed,
                ("Warm-up run of the denoiser failed: {:#}", e)
            ));
        }
        self.post_progress(gst::ProgressType::Complete, "DAWN model pack loaded");
        let mut loaded = self.loaded.lock().unwrap();
        loaded.engine = Some(engine);
        loaded.still = Some(portrait.still);
        loaded.face = Some(portrait.face);
        loaded.face_models = face_models;
        Ok(())
    }

    fn load_portrait(
        &self,
        engine: &Engine,
        models: Option<&FaceModels>,
        settings: &Settings,
        image: &std::path::Path,
        fixed_size: Option<(u32, u32)>,
    ) -> Result<LoadedPortrait, String> {
        let portrait = portrait_loader::load(engine, models, settings, image, fixed_size)
            .map_err(|e| format!("{e:#}"))?;
        for w in &portrait.warnings {
            gst::warning!(CAT, imp = self, "{w}");
            let msg = gst::message::Warning::builder(gst::StreamError::Format, w)
                .src(&*self.obj())
                .build();
            let _ = self.obj().post_message(msg);
        }
        let _ = self.obj().post_message(
            gst::message::Element::builder(portrait.report.clone())
                .src(&*self.obj())
                .build(),
        );
        Ok(portrait)
    }

    /// `image` changed while the element runs: analyse the new portrait off the streaming
    /// thread and hand it to the worker, which switches at the next chunk.
    fn swap_portrait(&self, image: PathBuf) {
        let (engine, models) = {
            let l = self.loaded.lock().unwrap();
            (l.engine.clone(), l.face_models.clone())
        };
        let Some(engine) = engine else {
            return;
        };
        let settings = self.settings.lock().unwrap().clone();
        // Full-portrait output keeps the size already negotiated downstream.
        let fixed_size = self
            .output
            .lock()
            .unwrap()
            .info
            .as_ref()
            .map(|i| (i.width(), i.height()));
        let obj = self.obj().downgrade();
        let spawned = std::thread::Builder::new()
            .name("dawn-portrait".into())
            .spawn(move || {
                let Some(obj) = obj.upgrade() else { return };
                let imp = obj.imp();
                match imp.load_portrait(&engine, models.as_deref(), &settings, &image, fixed_size) {
                    Ok(p) => {
                        {
                            let mut loaded = imp.loaded.lock().unwrap();
                            loaded.face = Some(p.face.clone());
                            loaded.still = Some(p.still.clone());
                        }
                        imp.shared.lock().pending_face = Some(p.face);
                        imp.shared.notify();
                        gst::info!(CAT, imp = imp, "portrait switched to {}", image.display());
                    }
                    Err(e) => {
                        // Keep animating the current portrait; tell the application why.
                        let text = format!(
                            "could not switch to portrait {}: {}; keeping the current one",
                            image.display(),
                            e
                        );
                        gst::warning!(CAT, imp = imp, "{text}");
                        let msg =
                            gst::message::Warning::builder(gst::ResourceError::OpenRead, &text)
                                .src(&obj)
                                .build();
                        let _ = obj.post_message(msg);
                    }
                }
            });
        if let Err(e) = spawned {
            gst::warning!(CAT, imp = self, "could not start the portrait thread: {e}");
        }
    }

    // ----------------------------------------------------------------- start / stop

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let (engine, face) = {
            let l = self.loaded.lock().unwrap();
            (l.engine.clone(), l.face.clone())
        };
        let (Some(engine), Some(face)) = (engine, face) else {
            return Err(gst::error_msg!(gst::CoreError::StateChange, ("not loaded")));
        };
        let rb = HeapRb::<f32>::new(RING_SECONDS * SAMPLE_RATE as usize);
        let (prod, cons) = rb.split();
        {
            let mut s = self.shared.lock();
            *s = SharedState {
                audio: Some(Box::new(cons)),
                ..SharedState::default()
            };
        }
        *self.input.lock().unwrap() = Input {
            producer: Some(Box::new(prod)),
            ..Input::default()
        };
        *self.output.lock().unwrap() = Output::default();
        let obj = self.obj().downgrade();
        let worker = Worker {
            shared: self.shared.clone(),
            engine,
            face,
            on_error: Box::new(move |msg| {
                if let Some(obj) = obj.upgrade() {
                    gst::element_error!(
                        obj,
                        gst::StreamError::Failed,
                        ("Inference failed: {}", msg)
                    );
                }
            }),
        };
        let handle = std::thread::Builder::new()
            .name("dawn-worker".into())
            .spawn(move || worker.run())
            .map_err(|e| {
                gst::error_msg!(
                    gst::CoreError::Failed,
                    ("Could not start the worker thread: {}", e)
                )
            })?;
        *self.worker.lock().unwrap() = Some(handle);
        Ok(())
    }

    fn stop(&self) {
        {
            let mut s = self.shared.lock();
            s.stopping = true;
            s.flushing = true;
        }
        self.shared.notify();
        // The worker finishes at most the model run it is in.
        if let Some(h) = self.worker.lock().unwrap().take() {
            let _ = h.join();
        }
        let mut s = self.shared.lock();
        s.queue.clear();
        s.audio = None;
        drop(s);
        self.input.lock().unwrap().producer = None;
        *self.upstream.lock().unwrap() = Upstream::default();
    }

    // ----------------------------------------------------------------- sink side

    /// Our share of the latency: the audio a chunk waits for beyond its first frame plus the
    /// processing budget (`latency`).
    fn own_latency(&self, live: bool) -> gst::ClockTime {
        let resolution = self
            .loaded
            .lock()
            .unwrap()
            .engine
            .as_ref()
            .map_or(128, |e| e.resolution());
        let settings = self.settings.lock().unwrap();
        let wait = settings.chunking(live, resolution, None).wait_frames() as u64;
        FRAME_DURATION * wait + gst::ClockTime::from_mseconds(settings.latency_ms as u64)
    }

    fn upstream_is_live(&self) -> bool {
        let mut q = gst::query::Latency::new();
        if !self.sinkpad.peer_query(&mut q) {
            return false;
        }
        let (live, min, _) = q.result();
        self.input.lock().unwrap().upstream_latency = min;
        live
    }

    /// First data: decide live or offline chunking and give the worker its stream settings.
    fn configure_stream(&self) {
        let live = self.upstream_is_live();
        let engine = self.loaded.lock().unwrap().engine.clone();
        let Some(engine) = engine else { return };
        let settings = self.settings.lock().unwrap().clone();
        let steps = if settings.sampling_steps > 0 {
            settings.sampling_steps as usize
        } else {
            engine.default_steps()
        };
        // A file's length lets offline chunks be balanced (one pass when it fits in one call).
        let total_frames = if live {
            None
        } else {
            self.sinkpad
                .peer_query_duration::<gst::ClockTime>()
                .map(|d| (d.nseconds() / FRAME_DURATION.nseconds()) as usize)
        };
        let cfg = StreamConfig {
            chunk: settings.chunking(live, engine.resolution(), total_frames),
            steps,
            eta: engine.default_eta(),
            decoder_batch: settings.decoder_batch.max(1) as usize,
        };
        gst::info!(
            CAT,
            imp = self,
            "{} stream: chunk {} + context {} + look-ahead {} frames, {} steps",
            if live { "live" } else { "non-live" },
            cfg.chunk.chunk,
            cfg.chunk.context,
            cfg.chunk.lookahead,
            steps
        );
        let mut s = self.shared.lock();
        s.stream_config = Some(cfg);
        s.live = live;
        s.seed = settings.seed;
        s.min_steps = settings.min_sampling_steps;
        s.stats.max_steps = steps as u32;
        // Non-live: queue one chunk ahead. Live: enough to ride out jitter.
        s.queue_limit = cfg.chunk.chunk.max(1) * 2;
        drop(s);
        self.shared.notify();
    }

    /// Writes samples into the ring buffer, waiting for space (back-pressure) unless flushing.
    fn write_samples(
        &self,
        producer: &mut ringbuf::HeapProd<f32>,
        mut samples: &[f32],
    ) -> Result<(), gst::FlowError> {
        while !samples.is_empty() {
            let n = producer.push_slice(samples);
            samples = &samples[n..];
            self.shared.notify();
            if samples.is_empty() {
                break;
            }
            let mut s = self.shared.lock();
            loop {
                if s.flushing || s.stopping {
                    return Err(gst::FlowError::Flushing);
                }
                if producer.vacant_len() > 0 {
                    break;
                }
                s = self.shared.wait_timeout(s, Duration::from_millis(100));
            }
        }
        Ok(())
    }

    fn write_silence(
        &self,
        producer: &mut ringbuf::HeapProd<f32>,
        n: u64,
    ) -> Result<(), gst::FlowError> {
        let zeros = [0f32; 1024];
        let mut left = n as usize;
        while left > 0 {
            let k = left.min(zeros.len());
            self.write_samples(producer, &zeros[..k])?;
            left -= k;
        }
        Ok(())
    }

    /// Stream time of sample `n`.
    fn sample_pts(base: gst::ClockTime, n: u64) -> gst::ClockTime {
        base + gst::ClockTime::from_nseconds(
            (n as u128 * 1_000_000_000u128 / SAMPLE_RATE as u128) as u64,
        )
    }

    fn samples_between(a: gst::ClockTime, b: gst::ClockTime) -> u64 {
        ((b.nseconds().saturating_sub(a.nseconds())) as u128 * SAMPLE_RATE as u128
            / 1_000_000_000u128) as u64
    }

    fn sink_chain(&self, buffer: gst::Buffer) -> Result<gst::FlowSuccess, gst::FlowError> {
        {
            let s = self.shared.lock();
            if s.flushing || s.stopping {
                return Err(gst::FlowError::Flushing);
            }
            if s.error.is_some() {
                return Err(gst::FlowError::Error);
            }
            s.flow?;
        }
        if !self.input.lock().unwrap().configured {
            self.configure_stream();
            self.input.lock().unwrap().configured = true;
        }
        let inserted = {
            let mut s = self.shared.lock();
            s.chain_busy = true;
            s.silence_inserted
        };
        let res = self.chain_audio(buffer, inserted);
        self.shared.lock().chain_busy = false;
        self.shared.notify();
        res
    }

    /// Converts one buffer into the timeline (silence for gaps, overlaps dropped) and writes it
    /// into the ring. `inserted`: silence the worker added on its own (live, audio overdue).
    fn chain_audio(
        &self,
        buffer: gst::Buffer,
        inserted: u64,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        // Take the producer out so no lock is held while waiting for ring space.
        let (mut producer, format, mut samples, gap, skip) = {
            let mut input = self.input.lock().unwrap();
            let Some(format) = input.format else {
                gst::element_imp_error!(
                    self,
                    gst::CoreError::Negotiation,
                    ("Received audio before caps")
                );
                return Err(gst::FlowError::NotNegotiated);
            };
            let Some(producer) = input.producer.take() else {
                return Err(gst::FlowError::Flushing);
            };
            let pts = buffer.pts();
            if input.base_pts.is_none() {
                input.base_pts = Some(pts.unwrap_or_else(|| {
                    input
                        .segment
                        .as_ref()
                        .and_then(|s| s.start())
                        .unwrap_or(gst::ClockTime::ZERO)
                }));
            }
            let base = input.base_pts.unwrap();
            let expected = Self::sample_pts(base, input.written + inserted);
            let (mut gap, mut skip) = (0u64, 0u64);
            if let Some(pts) = pts {
                if pts > expected + DISCONT_TOLERANCE {
                    gap = Self::samples_between(expected, pts);
                    gst::debug!(
                        CAT,
                        imp = self,
                        "gap of {gap} samples before {pts}: silence"
                    );
                } else if pts + DISCONT_TOLERANCE < expected {
                    skip = Self::samples_between(pts, expected);
                    gst::debug!(
                        CAT,
                        imp = self,
                        "overlap of {skip} samples at {pts}: dropped"
                    );
                }
            }
            (
                producer,
                format,
                std::mem::take(&mut input.samples),
                gap,
                skip,
            )
        };
        let map = buffer.map_readable().map_err(|_| {
            gst::element_imp_error!(self, gst::StreamError::Failed, ("Unreadable buffer"));
            gst::FlowError::Error
        })?;
        samples.clear();
        match format {
            gst_audio::AudioFormat::F32le => samples.extend(
                map.chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            ),
            _ => samples.extend(
                map.chunks_exact(2)
                    .map(|b| i16::from_le_bytes([b[0], b[1]]) as f32 / 32768.0),
            ),
        }
        drop(map);
        let skip = (skip as usize).min(samples.len());
        let result = self
            .write_silence(&mut producer, gap)
            .and_then(|_| self.write_samples(&mut producer, &samples[skip..]));
        {
            let mut input = self.input.lock().unwrap();
            input.written += gap + (samples.len() - skip) as u64;
            input.samples = samples;
            input.producer = Some(producer);
        }
        result?;
        self.shared.lock().flow
    }

    fn sink_event(&self, pad: &gst::Pad, event: gst::Event) -> bool {
        use gst::EventView;
        gst::log!(CAT, obj = pad, "sink event {event:?}");
        match event.view() {
            EventView::Caps(c) => {
                let info = match gst_audio::AudioInfo::from_caps(c.caps()) {
                    Ok(i) => i,
                    Err(_) => {
                        gst::element_imp_error!(
                            self,
                            gst::CoreError::Negotiation,
                            (
                                "Unsupported audio caps {}; fix: put audioconvert ! audioresample before dawnavatar",
                                c.caps()
                            )
                        );
                        return false;
                    }
                };
                self.input.lock().unwrap().format = Some(info.format());
                true
            }
            EventView::StreamStart(_) => {
                self.upstream.lock().unwrap().stream_start = Some(event.clone());
                true
            }
            EventView::Segment(seg) => {
                let Ok(segment) = seg.segment().clone().downcast::<gst::ClockTime>() else {
                    gst::element_imp_error!(
                        self,
                        gst::StreamError::Format,
                        ("Only TIME segments are supported")
                    );
                    return false;
                };
                {
                    let mut input = self.input.lock().unwrap();
                    input.segment = Some(segment);
                }
                self.upstream.lock().unwrap().segment = Some(event.clone());
                self.output.lock().unwrap().sent_segment = false;
                true
            }
            EventView::Gap(gap) => {
                // Live sources announce missing audio with GAP: fill it with silence so the
                // avatar keeps moving (idle motion) and frame numbers follow the clock.
                let (ts, duration) = gap.get();
                let mut input = self.input.lock().unwrap();
                let Some(mut producer) = input.producer.take() else {
                    return true;
                };
                if input.base_pts.is_none() {
                    input.base_pts = Some(ts);
                }
                let base = input.base_pts.unwrap();
                let end = ts + duration.unwrap_or(gst::ClockTime::ZERO);
                let inserted = self.shared.lock().silence_inserted;
                let expected = Self::sample_pts(base, input.written + inserted);
                let n = if end > expected {
                    Self::samples_between(expected, end)
                } else {
                    0
                };
                drop(input);
                if !self.input.lock().unwrap().configured {
                    self.configure_stream();
                    self.input.lock().unwrap().configured = true;
                }
                let res = self.write_silence(&mut producer, n);
                let mut input = self.input.lock().unwrap();
                input.written += n;
                input.producer = Some(producer);
                res.is_ok()
            }
            EventView::Eos(_) => {
                if !self.input.lock().unwrap().configured {
                    self.configure_stream();
                    self.input.lock().unwrap().configured = true;
                }
                self.shared.lock().input_eos = true;
                self.shared.notify();
                true
            }
            EventView::FlushStart(_) => {
                {
                    let mut s = self.shared.lock();
                    s.flushing = true;
                }
                self.shared.notify();
                let ret = self.srcpad.push_event(event);
                let _ = self.srcpad.pause_task();
                ret
            }
            EventView::FlushStop(_) => {
                {
                    let mut s = self.shared.lock();
                    s.generation += 1;
                    s.queue.clear();
                    if let Some(c) = s.audio.as_mut() {
                        c.clear();
                    }
                    s.input_eos = false;
                    s.flow = Ok(gst::FlowSuccess::Ok);
                    s.shown_before = 0;
                    s.total_frames = None;
                    s.silence_until = 0;
                    s.silence_inserted = 0;
                    s.flushing = false;
                }
                {
                    let mut input = self.input.lock().unwrap();
                    input.written = 0;
                    input.base_pts = None;
                }
                {
                    let mut out = self.output.lock().unwrap();
                    out.next_index = 0;
                    out.sent_segment = false;
                }
                let ret = self.srcpad.push_event(event);
                self.shared.notify();
                self.start_task();
                ret
            }
            _ => {
                if event.is_serialized() && event.is_sticky() {
                    // Tags and the like: forwarding them now could overtake frames still
                    // being generated; they carry nothing the video needs.
                    gst::debug!(CAT, imp = self, "dropping {:?}", event.type_());
                    true
                } else {
                    gst::Pad::event_default(pad, Some(&*self.obj()), event)
                }
            }
        }
    }

    // ----------------------------------------------------------------- src side

    fn start_task(&self) {
        let obj = self.obj().downgrade();
        let res = self.srcpad.start_task(move || {
            let Some(obj) = obj.upgrade() else { return };
            obj.imp().src_loop();
        });
        if let Err(e) = res {
            gst::element_imp_error!(
                self,
                gst::CoreError::Failed,
                ("Could not start the src task: {}", e)
            );
        }
    }

    /// The running time at which frame `index` must be pushed to reach a live sink in time.
    fn frame_deadline(&self, index: u64, out: &Output) -> Option<gst::ClockTime> {
        let input = self.input.lock().unwrap();
        let base = input.base_pts?;
        let segment = input.segment.as_ref()?;
        let pts = base + FRAME_DURATION * index;
        let rt = segment.to_running_time(pts)?;
        let latency = out
            .pipeline_latency
            .unwrap_or_else(|| self.own_latency(true));
        // Leave one frame for the push and the sink's own processing.
        Some((rt + latency).saturating_sub(FRAME_DURATION))
    }

    /// The sample position live audio should have reached at running time `now`: audio
    /// captured at running time t arrives by t + upstream latency; a grace of 200 ms covers
    /// jitter.
    fn overdue_audio_position(&self, now: gst::ClockTime) -> Option<u64> {
        let input = self.input.lock().unwrap();
        let base = input.base_pts?;
        let segment = input.segment.as_ref()?;
        let upstream = input.upstream_latency;
        let rt = now.checked_sub(upstream + gst::ClockTime::from_mseconds(200))?;
        let pts = segment.position_from_running_time(rt)?;
        (pts > base).then(|| Self::samples_between(base, pts))
    }

    fn src_loop(&self) {
        // 1. Wait for the next item, or (live) for the next frame's deadline.
        let item = {
            let mut s = self.shared.lock();
            loop {
                if s.stopping || s.flushing {
                    drop(s);
                    let _ = self.srcpad.pause_task();
                    return;
                }
                if s.error.is_some() {
                    drop(s);
                    let _ = self.srcpad.pause_task();
                    return;
                }
                let live = s.live;
                let next = self.output.lock().unwrap().next_index;
                if live {
                    // Frames shown already (repeated while inference was late) are dropped.
                    while let Some(OutItem::Frame { index, .. }) = s.queue.front() {
                        if *index >= next {
                            break;
                        }
                        s.queue.pop_front();
                        s.stats.frames_dropped += 1;
                    }
                }
                match s.queue.front() {
                    Some(OutItem::Frame { index, .. }) if !live || *index == next => {
                        break s.queue.pop_front();
                    }
                    Some(OutItem::Eos) => break s.queue.pop_front(),
                    _ => {}
                }
                let past_end = s.total_frames.is_some_and(|n| next >= n);
                if live && !past_end && self.obj().current_state() == gst::State::Playing {
                    let deadline = {
                        let out = self.output.lock().unwrap();
                        self.frame_deadline(next, &out)
                    };
                    let now = self.obj().current_running_time();
                    if let (Some(deadline), Some(now)) = (deadline, now) {
                        if now >= deadline {
                            // Late: repeat the last frame, and if the audio itself is overdue
                            // let the worker fill silence so the avatar idles.
                            if let Some(pos) = self.overdue_audio_position(now) {
                                s.silence_until = s.silence_until.max(pos);
                                self.shared.notify();
                            }
                            break None;
                        }
                        let wait = (deadline - now).min(gst::ClockTime::from_mseconds(100));
                        s = self
                            .shared
                            .wait_timeout(s, Duration::from_nanos(wait.nseconds()));
                        continue;
                    }
                    s = self.shared.wait_timeout(s, Duration::from_millis(20));
                    continue;
                }
                s = self.shared.wait_timeout(s, Duration::from_millis(100));
            }
        };
        // 2. Push it (no lock held).
        let result = match item {
            Some(OutItem::Eos) => {
                gst::debug!(CAT, imp = self, "all frames pushed, EOS");
                self.srcpad.push_event(gst::event::Eos::new());
                Ok(gst::FlowSuccess::Ok)
            }
            Some(OutItem::Frame {
                index,
                rgb,
                compositor,
            }) => self.push_frame(index, rgb, compositor, false),
            None => {
                let (index, last) = {
                    let out = self.output.lock().unwrap();
                    (out.next_index, out.last.clone())
                };
                let last = last.or_else(|| {
                    let l = self.loaded.lock().unwrap();
                    let compositor = l.face.as_ref().and_then(|f| f.compositor.clone());
                    l.still.clone().map(|s| (s, compositor))
                });
                match last {
                    Some((rgb, compositor)) => self.push_frame(index, rgb, compositor, true),
                    None => Ok(gst::FlowSuccess::Ok),
                }
            }
        };
        if let Err(err) = result {
            self.shared.lock().flow = Err(err);
            self.shared.notify();
            if matches!(err, gst::FlowError::Flushing) {
                let _ = self.srcpad.pause_task();
                return;
            }
            if err == gst::FlowError::Eos {
                let _ = self.srcpad.pause_task();
                return;
            }
            gst::element_imp_error!(
                self,
                gst::StreamError::Failed,
                ("Streaming stopped, reason {:?}", err)
            );
            self.srcpad.push_event(gst::event::Eos::new());
            let _ = self.srcpad.pause_task();
        }
    }

    /// Sends stream-start, caps and segment before the first frame.
    fn ensure_events(&self, (width, height): (u32, u32)) -> Result<(), gst::FlowError> {
        let (need_start, need_caps, need_segment) = {
            let out = self.output.lock().unwrap();
            (
                !out.sent_stream_start,
                out.info.is_none(),
                !out.sent_segment,
            )
        };
        if need_start {
            let ev = self
                .upstream
                .lock()
                .unwrap()
                .stream_start
                .clone()
                .unwrap_or_else(|| gst::event::StreamStart::new("dawnavatar"));
            self.srcpad.push_event(ev);
            self.output.lock().unwrap().sent_stream_start = true;
        }
        if need_caps {
            let info = self.negotiate(width, height)?;
            let mut out = self.output.lock().unwrap();
            out.format = Some(pixel_format(info.format()).ok_or(gst::FlowError::NotNegotiated)?);
            out.info = Some(info);
        }
        if need_segment {
            let ev = self
                .upstream
                .lock()
                .unwrap()
                .segment
                .clone()
                .unwrap_or_else(|| {
                    gst::event::Segment::new(&gst::FormattedSegment::<gst::ClockTime>::new())
                });
            self.srcpad.push_event(ev);
            self.output.lock().unwrap().sent_segment = true;
        }
        Ok(())
    }

    fn negotiate(&self, width: u32, height: u32) -> Result<gst_video::VideoInfo, gst::FlowError> {
        let ours = src_caps(Some((width, height)));
        let peer = self.srcpad.peer_query_caps(Some(&ours));
        if peer.is_empty() {
            gst::element_imp_error!(
                self,
                gst::CoreError::Negotiation,
                (
                    "Downstream accepts none of {}; fix: add videoconvert ! videoscale after dawnavatar",
                    ours
                )
            );
            return Err(gst::FlowError::NotNegotiated);
        }
        let mut caps = peer;
        caps.fixate();
        let info =
            gst_video::VideoInfo::from_caps(&caps).map_err(|_| gst::FlowError::NotNegotiated)?;
        gst::info!(CAT, imp = self, "output caps {caps}");
        if !self.srcpad.push_event(gst::event::Caps::new(&caps)) {
            gst::element_imp_error!(
                self,
                gst::CoreError::Negotiation,
                ("Downstream refused caps {}", caps)
            );
            return Err(gst::FlowError::NotNegotiated);
        }
        Ok(info)
    }

    fn push_frame(
        &self,
        index: u64,
        rgb: Arc<Vec<u8>>,
        compositor: Option<Arc<Compositor>>,
        repeated: bool,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let size = match &compositor {
            Some(c) => c.size(),
            None => {
                let side = ((rgb.len() / 3) as f64).sqrt() as u32;
                (side, side)
            }
        };
        self.ensure_events(size)?;
        let (info, format) = {
            let out = self.output.lock().unwrap();
            (out.info.clone().unwrap(), out.format.unwrap())
        };
        let base = self
            .input
            .lock()
            .unwrap()
            .base_pts
            .unwrap_or(gst::ClockTime::ZERO);
        let mut buffer = gst::Buffer::with_size(info.size()).map_err(|_| gst::FlowError::Error)?;
        {
            let buf = buffer.get_mut().unwrap();
            buf.set_pts(base + FRAME_DURATION * index);
            buf.set_duration(FRAME_DURATION);
            buf.set_offset(index);
            buf.set_offset_end(index + 1);
            if index == 0 {
                buf.set_flags(gst::BufferFlags::DISCONT);
            }
            let mut frame = gst_video::VideoFrameRef::from_buffer_ref_writable(buf, &info)
                .map_err(|_| gst::FlowError::Error)?;
            let strides: Vec<usize> = frame.plane_stride().iter().map(|&s| s as usize).collect();
            let (w, h) = (info.width() as usize, info.height() as usize);
            let mut planes = frame.planes_data_mut();
            let n = info.n_planes() as usize;
            match &compositor {
                Some(c) => {
                    // The face pasted back into the portrait, then converted.
                    let mut out = self.output.lock().unwrap();
                    let mut full = std::mem::take(&mut out.composed);
                    drop(out);
                    full.resize(w * h * 3, 0);
                    c.compose(&rgb, &mut full);
                    pixels::write_rgb8(&full, w, h, format, &mut planes[..n], &strides);
                    self.output.lock().unwrap().composed = full;
                }
                None => pixels::write_rgb8(&rgb, w, h, format, &mut planes[..n], &strides),
            }
        }
        {
            let mut out = self.output.lock().unwrap();
            out.next_index = index + 1;
            out.last = Some((rgb, compositor));
            if repeated && !out.warned_late {
                out.warned_late = true;
                let stats = self.shared.lock().stats;
                gst::warning!(
                    CAT,
                    imp = self,
                    "inference is late: repeating frames to keep 25 fps (last chunk real-time factor {:.2}, {} steps); consider execution-provider=cuda, fewer sampling-steps or a larger latency",
                    stats.last_rtf,
                    stats.current_steps
                );
            }
        }
        {
            let mut s = self.shared.lock();
            s.shown_before = index + 1;
            s.stats.next_frame = index + 1;
            if repeated {
                s.stats.last_repeat = Some(index);
                s.stats.frames_repeated += 1;
            } else {
                s.stats.frames_pushed += 1;
            }
        }
        self.shared.notify();
        gst::trace!(
            CAT,
            imp = self,
            "pushing frame {index}{}",
            if repeated { " (repeat)" } else { "" }
        );
        self.srcpad.push(buffer)
    }

    fn src_query(&self, pad: &gst::Pad, query: &mut gst::QueryRef) -> bool {
        use gst::QueryViewMut;
        match query.view_mut() {
            QueryViewMut::Latency(q) => {
                let mut upstream = gst::query::Latency::new();
                if !self.sinkpad.peer_query(&mut upstream) {
                    return false;
                }
                let (live, min, max) = upstream.result();
                if live {
                    let ours = self.own_latency(true);
                    q.set(true, min + ours, max.map(|m| m + ours));
                    gst::debug!(CAT, imp = self, "latency: upstream {min} + ours {ours}");
                } else {
                    q.set(false, min, max);
                }
                true
            }
            QueryViewMut::Caps(q) => {
                // Once negotiated the size is fixed; before, it follows the pack (face) or
                // the compositor (portrait).
                let size = {
                    let l = self.loaded.lock().unwrap();
                    match l.face.as_ref().and_then(|f| f.compositor.as_ref()) {
                        Some(c) => Some(c.size()),
                        None => l.engine.as_ref().map(|e| {
                            let r = e.resolution() as u32;
                            (r, r)
                        }),
                    }
                };
                let caps = src_caps(size);
                let caps = match q.filter() {
                    Some(f) => f.intersect_with_mode(&caps, gst::CapsIntersectMode::First),
                    None => caps,
                };
                q.set_result(&caps);
                true
            }
            _ => gst::Pad::query_default(pad, Some(&*self.obj()), query),
        }
    }

    fn src_event(&self, pad: &gst::Pad, event: gst::Event) -> bool {
        if let gst::EventView::Latency(l) = event.view() {
            self.output.lock().unwrap().pipeline_latency = Some(l.latency());
        }
        gst::Pad::event_default(pad, Some(&*self.obj()), event)
    }
}

fn pixel_format(f: gst_video::VideoFormat) -> Option<PixelFormat> {
    use gst_video::VideoFormat as V;
    Some(match f {
        V::Rgb => PixelFormat::Rgb,
        V::Bgr => PixelFormat::Bgr,
        V::Rgba => PixelFormat::Rgba,
        V::Bgra => PixelFormat::Bgra,
        V::Rgbx => PixelFormat::Rgbx,
        V::Bgrx => PixelFormat::Bgrx,
        V::Xrgb => PixelFormat::Xrgb,
        V::Xbgr => PixelFormat::Xbgr,
        V::Argb => PixelFormat::Argb,
        V::Abgr => PixelFormat::Abgr,
        V::I420 => PixelFormat::I420,
        V::Nv12 => PixelFormat::Nv12,
        V::Yuy2 => PixelFormat::Yuy2,
        _ => return None,
    })
}

const VIDEO_FORMATS: [gst_video::VideoFormat; 13] = [
    gst_video::VideoFormat::Rgb,
    gst_video::VideoFormat::Rgba,
    gst_video::VideoFormat::Bgrx,
    gst_video::VideoFormat::Bgra,
    gst_video::VideoFormat::Rgbx,
    gst_video::VideoFormat::Xrgb,
    gst_video::VideoFormat::Xbgr,
    gst_video::VideoFormat::Argb,
    gst_video::VideoFormat::Abgr,
    gst_video::VideoFormat::Bgr,
    gst_video::VideoFormat::I420,
    gst_video::VideoFormat::Nv12,
    gst_video::VideoFormat::Yuy2,
];

/// Src caps: raw video at 25 fps with square pixels, at a fixed size once the pack is known.
fn src_caps(size: Option<(u32, u32)>) -> gst::Caps {
    let b = gst_video::VideoCapsBuilder::new()
        .format_list(VIDEO_FORMATS)
        .framerate(gst::Fraction::new(FPS as i32, 1))
        .pixel_aspect_ratio(gst::Fraction::new(1, 1));
    match size {
        Some((w, h)) => b.width(w as i32).height(h as i32).build(),
        None => b.build(),
    }
}

fn sink_caps() -> gst::Caps {
    gst_audio::AudioCapsBuilder::new_interleaved()
        .format_list([gst_audio::AudioFormat::F32le, gst_audio::AudioFormat::S16le])
        .rate(SAMPLE_RATE as i32)
        .channels(1)
        .build()
}

#[glib::object_subclass]
impl ObjectSubclass for DawnAvatar {
    const NAME: &'static str = "GstDawnAvatar";
    type Type = super::DawnAvatar;
    type ParentType = gst::Element;

    fn with_class(klass: &Self::Class) -> Self {
        let sinkpad = gst::Pad::builder_from_template(&klass.pad_template("sink").unwrap())
            .chain_function(|_pad, parent, buffer| {
                DawnAvatar::catch_panic_pad_function(
                    parent,
                    || Err(gst::FlowError::Error),
                    |imp| imp.sink_chain(buffer),
                )
            })
            .event_function(|pad, parent, event| {
                DawnAvatar::catch_panic_pad_function(
                    parent,
                    || false,
                    |imp| imp.sink_event(pad, event),
                )
            })
            .build();
        let srcpad = gst::Pad::builder_from_template(&klass.pad_template("src").unwrap())
            .query_function(|pad, parent, query| {
                DawnAvatar::catch_panic_pad_function(
                    parent,
                    || false,
                    |imp| imp.src_query(pad, query),
                )
            })
            .event_function(|pad, parent, event| {
                DawnAvatar::catch_panic_pad_function(
                    parent,
                    || false,
                    |imp| imp.src_event(pad, event),
                )
            })
            .activatemode_function(|_pad, parent, mode, active| {
                DawnAvatar::catch_panic_pad_function(
                    parent,
                    || Err(gst::loggable_error!(CAT, "panic in activate")),
                    |imp| {
                        if mode != gst::PadMode::Push {
                            return Err(gst::loggable_error!(CAT, "only push mode"));
                        }
                        if active {
                            imp.start_task();
                        } else {
                            {
                                let mut s = imp.shared.lock();
                                s.flushing = true;
                            }
                            imp.shared.notify();
                            let _ = imp.srcpad.stop_task();
                        }
                        Ok(())
                    },
                )
            })
            .build();
        Self {
            sinkpad,
            srcpad,
            settings: Mutex::new(Settings::default()),
            loaded: Mutex::new(Loaded::default()),
            input: Mutex::new(Input::default()),
            output: Mutex::new(Output::default()),
            shared: Arc::new(Shared::default()),
            upstream: Mutex::new(Upstream::default()),
            worker: Mutex::new(None),
        }
    }
}

impl ObjectImpl for DawnAvatar {
    fn properties() -> &'static [glib::ParamSpec] {
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
                    .blurb("Directory with yunet_s_dynamic.onnx, tddfa_v2_mb05_120x120.onnx and tddfa_param_mean_std_62.json for face detection and init pose (default: <model-path>/face when present; without them the whole image is used and DAWN's default pose)")
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
                glib::ParamSpecString::builder("init-pose")
                    .nick("Initial pose")
                    .blurb("Override the detected head pose: \"yaw,pitch,roll,scale,tx,ty\" (degrees, 3DDFA scale and ROI translation); empty = detect")
                    .mutable_playing()
                    .build(),
                glib::ParamSpecString::builder("init-eyes")
                    .nick("Initial eye openness")
                    .blurb("Override the detected eye-openness ratios: \"left,right\" (about 0.3 for open eyes); empty = detect")
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
                    .read_only()
                    .build(),
                glib::ParamSpecUInt::builder("current-sampling-steps")
                    .nick("Current sampling steps")
                    .blurb("Steps the last chunk ran (lower than sampling-steps when live degradation is active)")
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

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let path = |v: &glib::Value| {
            v.get::<Option<String>>()
                .unwrap()
                .filter(|s| !s.is_empty())
                .map(PathBuf::from)
        };
        let mut swap = None;
        let mut latency_changed = false;
        {
            let mut s = self.settings.lock().unwrap();
            match pspec.name() {
                "image" => {
                    let new = path(value);
                    if new != s.image {
                        s.image = new.clone();
                        swap = new;
                    }
                }
                "model-path" => s.model_path = path(value),
                "face-models" => s.face_models = path(value),
                "execution-provider" => s.execution_provider = value.get().unwrap(),
                "device-id" => s.device_id = value.get().unwrap(),
                "trt-cache-dir" => s.trt_cache_dir = path(value),
                "tensorrt-fp16" => s.trt_fp16 = value.get().unwrap(),
                "sampling-steps" => s.sampling_steps = value.get().unwrap(),
                "min-sampling-steps" => s.min_sampling_steps = value.get().unwrap(),
                "seed" => s.seed = value.get().unwrap(),
                "chunk-frames" => {
                    s.chunk_frames = value.get().unwrap();
                    latency_changed = true;
                }
                "context-frames" => s.context_frames = value.get().unwrap(),
                "lookahead-frames" => {
                    s.lookahead_frames = value.get().unwrap();
                    latency_changed = true;
                }
                "latency" => {
                    s.latency_ms = value.get().unwrap();
                    latency_changed = true;
                }
                "face-index" => s.face_index = value.get().unwrap(),
                "detect-face" => s.detect_face = value.get().unwrap(),
                "strict" => s.strict = value.get().unwrap(),
                "init-pose" => {
                    let text: Option<String> = value.get().unwrap();
                    s.init_pose = match text.as_deref().filter(|t| !t.is_empty()) {
                        None => None,
                        Some(t) => match parse_numbers::<6>(t) {
                            Ok(v) => Some(v),
                            Err(e) => {
                                gst::error!(CAT, imp = self, "init-pose ignored: {e}");
                                None
                            }
                        },
                    }
                }
                "init-eyes" => {
                    let text: Option<String> = value.get().unwrap();
                    s.init_eyes = match text.as_deref().filter(|t| !t.is_empty()) {
                        None => None,
                        Some(t) => match parse_numbers::<2>(t) {
                            Ok(v) => Some(v),
                            Err(e) => {
                                gst::error!(CAT, imp = self, "init-eyes ignored: {e}");
                                None
                            }
                        },
                    }
                }
                "decoder-batch" => s.decoder_batch = value.get().unwrap(),
                "output" => s.output = value.get().unwrap(),
                "output-width" => s.output_width = value.get().unwrap(),
                "output-height" => s.output_height = value.get().unwrap(),
                "feather" => s.feather = value.get().unwrap(),
                _ => unimplemented!("property {}", pspec.name()),
            }
        }
        if latency_changed {
            let _ = self
                .obj()
                .post_message(gst::message::Latency::builder().src(&*self.obj()).build());
        }
        if let Some(image) = swap
            && self.obj().current_state() > gst::State::Ready
        {
            self.swap_portrait(image);
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
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
            "init-pose" => s.init_pose.map(|v| format_numbers(&v)).to_value(),
            "init-eyes" => s.init_eyes.map(|v| format_numbers(&v)).to_value(),
            "decoder-batch" => s.decoder_batch.to_value(),
            "output" => s.output.to_value(),
            "output-width" => s.output_width.to_value(),
            "output-height" => s.output_height.to_value(),
            "feather" => s.feather.to_value(),
            name => {
                drop(s);
                let st = self.shared.lock().stats;
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
                            .field("live-rung", st.rung())
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
    }

    fn constructed(&self) {
        self.parent_constructed();
        let obj = self.obj();
        obj.add_pad(&self.sinkpad).unwrap();
        obj.add_pad(&self.srcpad).unwrap();
    }
}

impl GstObjectImpl for DawnAvatar {}

impl ElementImpl for DawnAvatar {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static META: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "DAWN talking-head avatar",
                "Filter/Converter/Audio/Video",
                super::DESCRIPTION,
                "gst-dawn developers",
            )
        });
        Some(&*META)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            vec![
                gst::PadTemplate::new(
                    "sink",
                    gst::PadDirection::Sink,
                    gst::PadPresence::Always,
                    &sink_caps(),
                )
                .unwrap(),
                gst::PadTemplate::new(
                    "src",
                    gst::PadDirection::Src,
                    gst::PadPresence::Always,
                    &src_caps(None),
                )
                .unwrap(),
            ]
        });
        TEMPLATES.as_ref()
    }

    fn change_state(
        &self,
        transition: gst::StateChange,
    ) -> Result<gst::StateChangeSuccess, gst::StateChangeError> {
        gst::debug!(CAT, imp = self, "changing state {transition:?}");
        match transition {
            gst::StateChange::NullToReady => {
                if let Err(err) = self.load() {
                    self.post_error_message(err);
                    return Err(gst::StateChangeError);
                }
            }
            gst::StateChange::ReadyToPaused => {
                if let Err(err) = self.start() {
                    self.post_error_message(err);
                    return Err(gst::StateChangeError);
                }
            }
            gst::StateChange::PausedToReady => {
                // Wake every thread before the pads deactivate.
                let mut s = self.shared.lock();
                s.stopping = true;
                s.flushing = true;
                drop(s);
                self.shared.notify();
            }
            _ => {}
        }
        let ret = self.parent_change_state(transition)?;
        match transition {
            gst::StateChange::PausedToReady => self.stop(),
            gst::StateChange::ReadyToNull => {
                *self.loaded.lock().unwrap() = Loaded::default();
            }
            _ => {}
        }
        Ok(ret)
    }
}
