//! The sink pad: audio buffers and events onto the stream's timeline, the ring the worker reads
//! and the queue the audio pass-through pad releases. Runs on upstream's streaming thread.

use gst::prelude::*;
use gst::subclass::prelude::*;

use super::imp::{CAT, DawnAvatar, FRAME_DURATION};
use super::state::{PassItem, Setup, State};
use super::timeline::frames_in;
use crate::engine::{StreamConfig, chunker};
use ringbuf::traits::Observer;

/// Live: audio captured at running time t should have arrived by t + upstream latency + this.
pub(super) const OVERDUE_GRACE: gst::ClockTime = gst::ClockTime::from_mseconds(200);

/// 16 kHz mono floats from one buffer; non-finite samples become 0 (counted).
fn convert(buffer: &gst::BufferRef, info: &gst_audio::AudioInfo) -> Result<(Vec<f32>, usize), ()> {
    let map = buffer.map_readable().map_err(|_| ())?;
    let channels = info.channels().max(1) as usize;
    let mut bad = 0;
    let mut clean = |v: f32| {
        if v.is_finite() {
            v
        } else {
            bad += 1;
            0.0
        }
    };
    let samples: Vec<f32> = match info.format() {
        gst_audio::AudioFormat::F32le => map
            .chunks_exact(4 * channels)
            .map(|frame| {
                let sum: f32 = frame
                    .chunks_exact(4)
                    .map(|b| clean(f32::from_le_bytes([b[0], b[1], b[2], b[3]])))
                    .sum();
                sum / channels as f32
            })
            .collect(),
        _ => map
            .chunks_exact(2 * channels)
            .map(|frame| {
                let sum: f32 = frame
                    .chunks_exact(2)
                    .map(|b| i16::from_le_bytes([b[0], b[1]]) as f32 / 32768.0)
                    .sum();
                sum / channels as f32
            })
            .collect(),
    };
    Ok((samples, bad))
}

impl DawnAvatar {
    pub(super) fn sink_chain(
        &self,
        buffer: gst::Buffer,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        self.ensure_setup()?;
        let (info, rt) = {
            let s = self.state();
            if s.flushing || s.stopping {
                return Err(gst::FlowError::Flushing);
            }
            if s.error {
                return Err(gst::FlowError::Error);
            }
            let Some(info) = s.audio_info.clone() else {
                drop(s);
                gst::element_imp_error!(
                    self,
                    gst::CoreError::Negotiation,
                    ("Received audio before caps; fix: put audioconvert ! audioresample before dawnavatar")
                );
                return Err(gst::FlowError::NotNegotiated);
            };
            let rt = buffer
                .pts()
                .and_then(|pts| s.stream.segment.as_ref()?.to_running_time(pts));
            (info, rt)
        };
        let Ok((samples, bad)) = convert(&buffer, &info) else {
            gst::element_imp_error!(self, gst::StreamError::Failed, ("Unreadable audio buffer"));
            return Err(gst::FlowError::Error);
        };
        if bad > 0 {
            self.warn_non_finite(bad);
        }
        self.feed(rt, &samples, Some(buffer))
    }

    fn warn_non_finite(&self, bad: usize) {
        let first = {
            let mut s = self.state();
            !std::mem::replace(&mut s.stream.warned_non_finite, true)
        };
        if first {
            self.post_warning(
                gst::StreamError::Decode,
                &format!(
                    "the audio contains NaN or infinite samples ({bad} in one buffer); they are \
                     played as silence. Fix the source (or put audioconvert before dawnavatar)"
                ),
            );
        }
    }

    /// Puts `samples` (starting at running time `rt`) on the timeline and into the ring,
    /// waiting for ring space; silence fills a hole before them, an overlap with what is
    /// already on the timeline is dropped. The buffer itself goes to the pass-through queue.
    fn feed(
        &self,
        rt: Option<gst::ClockTime>,
        samples: &[f32],
        buffer: Option<gst::Buffer>,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let mut s = self.state();
        let start = s.stream.timeline.buffer_start(rt);
        if let Some(buffer) = buffer {
            let end = (start + samples.len() as u64).max(s.stream.timeline.written());
            s.stream.pass.push_back(PassItem::Buffer { buffer, end });
        }
        let n = samples.len() as u64;
        let mut done = 0u64;
        while done < n {
            if s.flushing || s.stopping {
                return Err(gst::FlowError::Flushing);
            }
            let pos = start + done;
            let written = s.stream.timeline.written();
            if pos < written {
                // Already on the timeline (an overlap, or overdue silence the pacer filled).
                done += (written - pos).min(n - done);
                continue;
            }
            if pos > written {
                write_silence(&mut s, pos - written);
            } else {
                let k = (s.ring.vacant_len() as u64).min(n - done);
                let from = done as usize;
                s.ring.push_slice(&samples[from..from + k as usize]);
                s.stream.timeline.advance(k);
                s.stream.ring_written += k;
                done += k;
            }
            if done < n && s.ring.is_full() {
                // Back-pressure: the worker frees space as it takes audio.
                self.shared.notify();
                s = self.shared.wait(s);
            }
        }
        let flow = s.flow_result;
        drop(s);
        self.shared.notify();
        flow
    }

    /// First data (or the live prelude): live or offline chunking, and the worker's settings.
    /// Peer queries run without the lock; the first caller's result is kept.
    pub(super) fn ensure_setup(&self) -> Result<(), gst::FlowError> {
        let (generation, engine, segment) = {
            let s = self.state();
            if s.stream.setup.is_some() {
                return Ok(());
            }
            let Some(loaded) = s.loaded.as_ref() else {
                return Err(gst::FlowError::Flushing);
            };
            (
                s.generation,
                loaded.engine.clone(),
                s.stream.segment.clone(),
            )
        };
        let mut q = gst::query::Latency::new();
        let (live, upstream_latency) = if self.sinkpad.peer_query(&mut q) {
            let (live, min, _) = q.result();
            (live, min)
        } else {
            (false, gst::ClockTime::ZERO)
        };
        let span = if live {
            None
        } else {
            self.planned_span(segment.as_ref())
        };
        let planned = span.map(|d| (d.nseconds() / FRAME_DURATION.nseconds()) as usize);
        let settings = self.settings.lock().unwrap().clone();
        let steps = if settings.sampling_steps > 0 {
            settings.sampling_steps as usize
        } else {
            engine.default_steps()
        };
        let chunk = settings.chunking(live, engine.resolution(), planned);
        let setup = Setup {
            live,
            config: StreamConfig {
                chunk,
                steps,
                eta: engine.default_eta(),
                decoder_batch: settings.decoder_batch.max(1) as usize,
                planned_samples: span.map(|d| chunker::samples_for_duration(d.nseconds())),
            },
            upstream_latency,
            own_latency: FRAME_DURATION * chunk.wait_frames() as u64
                + gst::ClockTime::from_mseconds(settings.latency_ms as u64),
            seed: settings.seed,
            min_steps: (settings.min_sampling_steps as usize).clamp(1, steps),
            queue_limit: 2 * chunk.chunk.max(1),
        };
        gst::info!(
            CAT,
            imp = self,
            "{} stream{}: chunk {} + context {} + look-ahead {} frames, {} steps",
            if live { "live" } else { "non-live" },
            planned.map_or(String::new(), |n| format!(" of {n} frames")),
            chunk.chunk,
            chunk.context,
            chunk.lookahead,
            steps
        );
        {
            let mut s = self.state();
            if s.generation == generation && s.stream.setup.is_none() {
                s.stream.setup = Some(setup);
                s.stats.max_steps = steps as u32;
            }
        }
        self.shared.notify();
        Ok(())
    }

    /// How long a non-live stream will be when upstream knows: to the segment's stop if it
    /// has one, else to the duration, both from the segment's start. It chooses the chunking
    /// and DAWN's audio alignment; a stream that ends earlier still gives exactly the frames
    /// of the audio received.
    fn planned_span(
        &self,
        segment: Option<&gst::FormattedSegment<gst::ClockTime>>,
    ) -> Option<gst::ClockTime> {
        let start = segment.and_then(|s| s.start()).unwrap_or_default();
        let end = segment.and_then(|s| s.stop()).or_else(|| {
            self.sinkpad
                .peer_query_duration::<gst::ClockTime>()
                .filter(|d| *d > gst::ClockTime::ZERO)
        })?;
        end.checked_sub(start)
    }

    pub(super) fn sink_event(&self, pad: &gst::Pad, event: gst::Event) -> bool {
        use gst::EventView;
        gst::log!(CAT, obj = pad, "sink event {event:?}");
        match event.view() {
            EventView::Caps(c) => self.on_caps(c.caps_owned(), event.clone()),
            EventView::StreamStart(_) => {
                // Each src pad gets a stream-start of its own when it starts.
                true
            }
            EventView::Segment(seg) => {
                let Ok(segment) = seg.segment().clone().downcast::<gst::ClockTime>() else {
                    gst::element_imp_error!(
                        self,
                        gst::StreamError::Format,
                        ("dawnavatar needs TIME segments; fix: put audioconvert ! audioresample before dawnavatar")
                    );
                    return false;
                };
                let mut s = self.state();
                // Running time stays continuous across segments, and so does the timeline.
                s.stream.segment = Some(segment);
                s.stream.pass.push_back(PassItem::Event(event));
                drop(s);
                self.shared.notify();
                true
            }
            EventView::Gap(gap) => {
                if self.ensure_setup().is_err() {
                    return false;
                }
                self.on_gap(gap.get());
                true
            }
            EventView::Eos(_) => {
                if self.ensure_setup().is_err() {
                    return false;
                }
                let mut s = self.state();
                let tail = s.stream.timeline.silence_to(s.stream.gap_end);
                write_silence(&mut s, tail);
                s.stream.input_eos = true;
                // The DAWN rule: floor(N / 640) frames; the pacer never shows more.
                s.stream.total_frames = Some(frames_in(16_000, s.stream.ring_written));
                s.stream.pass.push_back(PassItem::Eos);
                drop(s);
                self.shared.notify();
                true
            }
            EventView::FlushStart(_) => {
                self.interrupt(false);
                let ret = self.srcpad.push_event(event.clone());
                let _ = self.audio_srcpad.push_event(event);
                let _ = self.srcpad.pause_task();
                let _ = self.audio_srcpad.pause_task();
                ret
            }
            EventView::FlushStop(_) => {
                {
                    let mut s = self.state();
                    s.reset();
                    s.flushing = false;
                }
                let ret = self.srcpad.push_event(event.clone());
                let _ = self.audio_srcpad.push_event(event);
                self.shared.notify();
                self.start_task(&self.srcpad);
                self.start_task(&self.audio_srcpad);
                ret
            }
            _ if event.is_serialized() => {
                // Tags and other serialized events: in order on the audio pad, before the next
                // frame on the video pad.
                let mut s = self.state();
                if event.is_sticky() {
                    s.stream.video_events.push(event.clone());
                }
                s.stream.pass.push_back(PassItem::Event(event));
                drop(s);
                self.shared.notify();
                true
            }
            _ => gst::Pad::event_default(pad, Some(&*self.obj()), event),
        }
    }

    fn on_caps(&self, caps: gst::Caps, event: gst::Event) -> bool {
        let info = match gst_audio::AudioInfo::from_caps(&caps) {
            Ok(i) if caps.can_intersect(&super::caps::sink_caps()) => i,
            _ => {
                gst::element_imp_error!(
                    self,
                    gst::CoreError::Negotiation,
                    (
                        "dawnavatar takes 16 kHz mono F32LE or S16LE audio, got {}; fix: put audioconvert ! audioresample before dawnavatar",
                        caps
                    )
                );
                return false;
            }
        };
        let mut s = self.state();
        s.audio_info = Some(info);
        s.stream.pass.push_back(PassItem::Event(event));
        drop(s);
        self.shared.notify();
        true
    }

    /// A GAP: live, the span is silence now (never beyond the present, whatever the event
    /// claims); non-live, only a hole that later audio or the segment's stop bounds is filled.
    fn on_gap(&self, (ts, duration): (gst::ClockTime, Option<gst::ClockTime>)) {
        let now = self.obj().current_running_time();
        let mut s = self.state();
        let Some(segment) = s.stream.segment.clone() else {
            return;
        };
        let Some(start_rt) = segment.to_running_time(ts) else {
            return;
        };
        let end = ts + duration.unwrap_or(gst::ClockTime::ZERO);
        let end = segment.stop().map_or(end, |stop| end.min(stop));
        let end_rt = segment.to_running_time(end).unwrap_or(start_rt);
        s.stream.timeline.start(start_rt);
        let Some(end_pos) = s.stream.timeline.position_at(end_rt) else {
            return;
        };
        if s.stream.live() {
            let limit = now
                .and_then(|n| s.stream.timeline.position_at(n))
                .unwrap_or(end_pos);
            let n = s.stream.timeline.silence_to(end_pos.min(limit));
            write_silence(&mut s, n);
        } else if segment.stop().is_some() {
            s.stream.gap_end = s.stream.gap_end.max(end_pos);
        }
        drop(s);
        self.shared.notify();
    }

    pub(super) fn sink_query(&self, pad: &gst::Pad, query: &mut gst::QueryRef) -> bool {
        use gst::QueryViewMut;
        match query.view_mut() {
            QueryViewMut::AcceptCaps(q) => {
                let ok = q.caps().can_intersect(&pad.pad_template_caps());
                q.set_result(ok);
                if !ok {
                    gst::warning!(
                        CAT,
                        imp = self,
                        "refusing caps {}: dawnavatar takes 16 kHz mono F32LE or S16LE audio; put audioconvert ! audioresample before it",
                        q.caps()
                    );
                }
                true
            }
            _ => gst::Pad::query_default(pad, Some(&*self.obj()), query),
        }
    }
}

/// Appends `n` samples of silence to the timeline and the ring, as far as the ring has room
/// (a full ring means the worker is far behind; the rest is filled when data follows).
pub(super) fn write_silence(s: &mut State, n: u64) {
    let room = (s.ring.vacant_len() as u64).min(n);
    if room == 0 {
        return;
    }
    let zeros = [0f32; 1024];
    let mut left = room;
    while left > 0 {
        let k = left.min(zeros.len() as u64) as usize;
        s.ring.push_slice(&zeros[..k]);
        left -= k as u64;
    }
    s.stream.timeline.advance(room);
    s.stream.ring_written += room;
}
