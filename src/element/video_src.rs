//! The `src` pad task: frames out, with timestamps from the audio timeline. In a live pipeline
//! whose sink syncs to the clock, each frame has a deadline on the pipeline clock; when it
//! passes before the frame is ready the last frame is repeated (a virtual camera never
//! stalls), audio that is overdue becomes silence (the avatar idles), and before any audio the
//! portrait idles from PLAYING on.

use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_video::prelude::*;

use super::caps;
use super::imp::{CAT, DawnAvatar, FRAME_DURATION};
use super::sink::{OVERDUE_GRACE, write_silence};
use super::state::{OutItem, Shown, State};
use crate::engine::pixels;

/// What the task does next, decided under the lock and done without it.
enum Step {
    Pause,
    Show(Show),
    Eos,
    /// Wait on the pipeline clock until a deadline (or a frame arriving unschedules it).
    Wait(gst::SingleShotClockId),
    /// Live prelude: find out whether upstream is live before any data arrived.
    CheckLive,
    /// Find out whether a sink syncs to the clock (else frames have no deadlines).
    CheckSync,
}

struct Show {
    index: u64,
    frame: Shown,
    /// Running time of the frame's start.
    rt: gst::ClockTime,
    repeated: bool,
    /// First frame of a lateness episode: warn with these figures.
    late_warning: Option<String>,
    /// Inference is late for this frame (QoS message).
    late: bool,
}

/// The clock as the task sees it at one decision.
#[derive(Clone, Copy)]
struct Now {
    running_time: gst::ClockTime,
    base_time: gst::ClockTime,
}

impl DawnAvatar {
    pub(super) fn video_loop(&self) {
        let obj = self.obj();
        let playing = obj.current_state() == gst::State::Playing;
        let clock = playing.then(|| obj.clock()).flatten();
        let base_time = obj.base_time();
        let step = {
            let mut s = self.state();
            let now = clock.as_ref().zip(base_time).and_then(|(c, b)| {
                Some(Now {
                    running_time: c.time().checked_sub(b)?,
                    base_time: b,
                })
            });
            match self.decide(&mut s, now, clock.as_ref()) {
                Some(step) => step,
                None => {
                    drop(self.shared.wait(s));
                    return;
                }
            }
        };
        match step {
            Step::Pause => {
                let _ = self.srcpad.pause_task();
            }
            Step::Wait(id) => {
                let _ = id.wait();
                let mut s = self.state();
                if s.clock_wait.as_ref() == Some(&id) {
                    s.clock_wait = None;
                }
            }
            Step::CheckLive => self.check_live_prelude(),
            Step::CheckSync => self.check_sync(),
            Step::Show(show) => self.show(show),
            Step::Eos => self.finish_video(),
        }
    }

    /// Under the lock: the next thing to do, or `None` to wait for a change of state.
    fn decide(&self, s: &mut State, now: Option<Now>, clock: Option<&gst::Clock>) -> Option<Step> {
        if s.flushing || s.stopping || s.error || s.stream.video_eos {
            return Some(Step::Pause);
        }
        let k = s.stream.next_frame;
        // Frames whose slot was filled by a repeat while they were generated.
        while let Some(OutItem::Frame { index, .. }) = s.stream.frames.front() {
            if *index >= k {
                break;
            }
            s.stream.frames.pop_front();
            s.stats.frames_dropped += 1;
        }
        match s.stream.frames.front() {
            Some(OutItem::Frame { index, .. }) if *index == k => {
                let Some(OutItem::Frame { frame, .. }) = s.stream.frames.pop_front() else {
                    unreachable!()
                };
                return Some(Step::Show(self.take_show(s, k, frame, false)));
            }
            Some(OutItem::Eos) => {
                s.stream.frames.pop_front();
                return Some(Step::Eos);
            }
            _ => {}
        }
        self.pace(s, k, now?, clock?)
    }

    /// Live pacing of frame `k` on the pipeline clock.
    fn pace(&self, s: &mut State, k: u64, now: Now, clock: &gst::Clock) -> Option<Step> {
        let latency = s.latency?;
        match s.downstream_syncs {
            None => return Some(Step::CheckSync),
            Some(false) => return None,
            Some(true) => {}
        }
        let Some(setup) = s.stream.setup else {
            // Nothing arrived yet: ask upstream once whether this is a live stream.
            return (!s.stream.prelude_checked).then_some(Step::CheckLive);
        };
        if !setup.live || s.stream.total_frames.is_some_and(|n| k >= n) {
            return None;
        }
        let arrival = setup.upstream_latency + OVERDUE_GRACE;
        if s.stream.timeline.base().is_none() {
            // The prelude: the avatar idles from the moment audio could have arrived.
            match now.running_time.checked_sub(arrival) {
                Some(start) => s.stream.timeline.start(start),
                None => return Some(self.wait_until(s, arrival, now, clock)),
            }
        }
        if !s.stream.input_eos {
            // Audio overdue (a source that stalled without GAP events): silence.
            let due = now
                .running_time
                .checked_sub(arrival)
                .and_then(|t| s.stream.timeline.position_at(t))
                .unwrap_or(0);
            let n = s.stream.timeline.silence_to(due);
            if n > 0 {
                write_silence(s, n);
                self.shared.notify();
            }
        }
        let rt = s.stream.timeline.base()? + FRAME_DURATION * k;
        // A pipeline latency below ours means no sink on our path set it (e.g. the audio
        // branch's sink syncs, the video goes to a file): frames are never due before the
        // latency this element reports.
        let latency = latency.max(setup.upstream_latency + setup.own_latency);
        // Leave one frame for the push and the sink's own processing.
        let deadline = (rt + latency).saturating_sub(FRAME_DURATION);
        if now.running_time >= deadline {
            let frame = s.stream.last_shown.clone().or_else(|| s.still.clone())?;
            return Some(Step::Show(self.take_show(s, k, frame, true)));
        }
        // Wake at the deadline, or sooner to fill overdue audio in time for the next chunk.
        let wake = deadline.min(now.running_time + FRAME_DURATION);
        Some(self.wait_until(s, wake, now, clock))
    }

    fn wait_until(&self, s: &mut State, rt: gst::ClockTime, now: Now, clock: &gst::Clock) -> Step {
        let id = clock.new_single_shot_id(now.base_time + rt);
        s.clock_wait = Some(id.clone());
        Step::Wait(id)
    }

    /// Under the lock: frame `k` is shown now (the one frame index moves on, so the worker and
    /// the audio pad see it before the push, which may block in a live sink).
    fn take_show(&self, s: &mut State, k: u64, frame: Shown, repeated: bool) -> Show {
        let rt = s.stream.timeline.base().unwrap_or_default() + FRAME_DURATION * k;
        s.stream.next_frame = k + 1;
        s.stream.last_shown = Some(frame.clone());
        // Late when the audio of this frame is there but the frame is not.
        let late = repeated && s.stream.ring_written >= 640 * (k + 1);
        let mut late_warning = None;
        if repeated {
            s.stats.frames_repeated += 1;
            s.stats.last_repeat = Some(k);
        } else {
            s.stats.frames_pushed += 1;
            if k >= s.stream.late_until {
                s.stream.late_episode = 0;
            }
        }
        if late {
            if s.stream.late_episode == 0 {
                late_warning = Some(format!(
                    "inference is late: repeating frames to keep 25 fps (frame {k}; last chunk \
                     real-time factor {:.2} at {} steps, {} frames repeated so far); consider \
                     execution-provider=cuda, fewer sampling-steps or a larger latency",
                    s.stats.last_rtf, s.stats.current_steps, s.stats.frames_repeated
                ));
            }
            s.stream.late_episode += 1;
            s.stream.late_until = k + 25;
        }
        self.shared.notify();
        Show {
            index: k,
            frame,
            rt,
            repeated,
            late_warning,
            late,
        }
    }

    /// Asks the whole pipeline for its latency: its sinks answer "live" only when they sync to
    /// the clock, so "not live" means nothing downstream renders in real time.
    fn check_sync(&self) {
        let mut top: gst::Element = self.obj().clone().upcast();
        while let Some(parent) = top.parent().and_then(|p| p.downcast::<gst::Element>().ok()) {
            top = parent;
        }
        let mut q = gst::query::Latency::new();
        let syncs = top.query(&mut q) && q.result().0;
        gst::debug!(CAT, imp = self, "a sink syncs to the clock: {syncs}");
        self.state().downstream_syncs = Some(syncs);
    }

    fn check_live_prelude(&self) {
        let mut q = gst::query::Latency::new();
        let live = self.sinkpad.peer_query(&mut q) && q.result().0;
        if live {
            let _ = self.ensure_setup();
        }
        self.state().stream.prelude_checked = true;
    }

    fn show(&self, show: Show) {
        if let Some(text) = &show.late_warning {
            self.post_warning(gst::StreamError::Failed, text);
            let (proportion, pts) = {
                let s = self.state();
                (s.stats.last_rtf.max(1.0), s.stream.timeline.base())
            };
            let ev = gst::event::Qos::new(gst::QOSType::Overflow, proportion, 0, pts);
            let _ = self.sinkpad.push_event(ev);
        }
        let res = self.push_frame(&show);
        if show.late {
            self.post_qos(&show);
        }
        gst::trace!(
            CAT,
            imp = self,
            "frame {}{}: {res:?}",
            show.index,
            if show.repeated { " (repeat)" } else { "" }
        );
        self.after_push(res);
    }

    fn post_qos(&self, show: &Show) {
        let (processed, dropped) = {
            let s = self.state();
            (
                s.stats.frames_pushed,
                s.stats.frames_repeated + s.stats.frames_dropped,
            )
        };
        let msg = gst::message::Qos::builder(true)
            .running_time(show.rt)
            .duration(FRAME_DURATION)
            .values(FRAME_DURATION.nseconds() as i64, 1.0, 0)
            .stats(
                gst::format::Buffers::from_u64(processed),
                gst::format::Buffers::from_u64(dropped),
            )
            .src(&*self.obj())
            .build();
        let _ = self.obj().post_message(msg);
    }

    /// Combines the push result with the other pad's and decides whether the task goes on.
    fn after_push(&self, res: Result<gst::FlowSuccess, gst::FlowError>) {
        let combined = {
            let mut s = self.state();
            if res == Err(gst::FlowError::Eos) {
                s.stream.video_eos = true;
            }
            let c = s.flow.update_pad_flow(&self.srcpad, res);
            s.flow_result = c;
            c
        };
        self.shared.notify();
        match res {
            Ok(_) => {}
            Err(gst::FlowError::Flushing) | Err(gst::FlowError::Eos) => {
                let _ = self.srcpad.pause_task();
            }
            Err(gst::FlowError::NotLinked) if combined.is_ok() => {}
            Err(err) => {
                gst::element_imp_error!(
                    self,
                    gst::StreamError::Failed,
                    ("Streaming stopped, reason {:?}", err)
                );
                self.state().error = true;
                self.shared.notify();
                self.srcpad.push_event(gst::event::Eos::new());
                let _ = self.srcpad.pause_task();
            }
        }
    }

    fn finish_video(&self) {
        // Even a stream too short for one frame gets its caps and segment before EOS.
        if self.ensure_video_events(self.output_size()).is_ok() {
            self.srcpad.push_event(gst::event::Eos::new());
        }
        gst::debug!(CAT, imp = self, "all frames pushed, EOS");
        self.state().stream.video_eos = true;
        self.shared.notify();
        let _ = self.srcpad.pause_task();
    }

    /// The output size: the compositor's (full portrait) or the pack's resolution.
    pub(super) fn output_size(&self) -> Option<(u32, u32)> {
        let s = self.state();
        let loaded = s.loaded.as_ref()?;
        Some(loaded.output_size.unwrap_or_else(|| {
            let r = loaded.engine.resolution() as u32;
            (r, r)
        }))
    }

    /// Stream-start, caps, segment and pending tags before a frame (or EOS); returns the
    /// output segment.
    fn ensure_video_events(
        &self,
        size: Option<(u32, u32)>,
    ) -> Result<gst::FormattedSegment<gst::ClockTime>, gst::FlowError> {
        let (started, segment, events, negotiated) = {
            let mut s = self.state();
            let started = std::mem::replace(&mut s.stream.video_started, true);
            let segment = match &s.stream.video_segment {
                Some(seg) => Ok(seg.clone()),
                None => {
                    let seg = s.stream.segment.clone().unwrap_or_default();
                    s.stream.video_segment = Some(seg.clone());
                    Err(seg)
                }
            };
            let events = std::mem::take(&mut s.stream.video_events);
            (started, segment, events, s.video_info.is_some())
        };
        if !started
            && self
                .srcpad
                .sticky_event::<gst::event::StreamStart>(0)
                .is_none()
        {
            self.srcpad.push_event(self.stream_start("video"));
        }
        // New pads start flagged for reconfiguration: one negotiation, not two.
        let reconfigure = self.srcpad.check_reconfigure();
        if !negotiated || reconfigure {
            let size = size.ok_or(gst::FlowError::Flushing)?;
            let info = self.negotiate(size)?;
            let format = caps::pixel_format(info.format()).ok_or(gst::FlowError::NotNegotiated)?;
            self.state().video_info = Some((info, format));
        }
        let segment = match segment {
            Ok(seg) => seg,
            Err(seg) => {
                self.srcpad.push_event(gst::event::Segment::new(&seg));
                seg
            }
        };
        for ev in events {
            self.srcpad.push_event(ev);
        }
        Ok(segment)
    }

    /// A stream-start for one of the src pads: upstream's group, a stream id of its own.
    pub(super) fn stream_start(&self, which: &str) -> gst::Event {
        let pad = if which == "video" {
            &self.srcpad
        } else {
            &self.audio_srcpad
        };
        let id = pad.create_stream_id(&*self.obj(), Some(which));
        let upstream = self.sinkpad.sticky_event::<gst::event::StreamStart>(0);
        let mut b = gst::event::StreamStart::builder(&id);
        if let Some(group) = upstream.as_ref().and_then(|e| e.group_id()) {
            b = b.group_id(group);
        }
        b.build()
    }

    fn negotiate(
        &self,
        (width, height): (u32, u32),
    ) -> Result<gst_video::VideoInfo, gst::FlowError> {
        let ours = caps::video_caps(Some((width, height)));
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

    fn push_frame(&self, show: &Show) -> Result<gst::FlowSuccess, gst::FlowError> {
        let size = show
            .frame
            .compositor
            .as_ref()
            .map(|c| c.size())
            .or_else(|| self.output_size());
        let segment = self.ensure_video_events(size)?;
        let Some((info, format)) = self.state().video_info.clone() else {
            return Err(gst::FlowError::NotNegotiated);
        };
        let Some(pts) = segment.position_from_running_time(show.rt) else {
            // Outside the output segment: nothing to show.
            return Ok(gst::FlowSuccess::Ok);
        };
        let mut buffer = gst::Buffer::with_size(info.size()).map_err(|_| gst::FlowError::Error)?;
        {
            let buf = buffer.get_mut().unwrap();
            buf.set_pts(pts);
            buf.set_duration(FRAME_DURATION);
            buf.set_offset(show.index);
            buf.set_offset_end(show.index + 1);
            if show.index == 0 {
                buf.set_flags(gst::BufferFlags::DISCONT);
            }
            let mut frame = gst_video::VideoFrameRef::from_buffer_ref_writable(buf, &info)
                .map_err(|_| gst::FlowError::Error)?;
            write_frame(&mut frame, &info, format, &show.frame);
        }
        self.srcpad.push(buffer)
    }
}

/// Writes one shown frame (the face, or the face pasted into the portrait) in the negotiated
/// format.
fn write_frame(
    frame: &mut gst_video::VideoFrameRef<&mut gst::BufferRef>,
    info: &gst_video::VideoInfo,
    format: pixels::PixelFormat,
    shown: &Shown,
) {
    let strides: Vec<usize> = frame.plane_stride().iter().map(|&s| s as usize).collect();
    let (w, h) = (info.width() as usize, info.height() as usize);
    let n = info.n_planes() as usize;
    let mut planes = frame.planes_data_mut();
    match &shown.compositor {
        Some(c) if c.size() == (info.width(), info.height()) => {
            let mut full = vec![0u8; w * h * 3];
            c.compose(&shown.rgb, &mut full);
            pixels::write_rgb8(&full, w, h, format, &mut planes[..n], &strides);
        }
        Some(_) => {
            gst::warning!(CAT, "portrait composed at another size than negotiated");
        }
        None => pixels::write_rgb8(&shown.rgb, w, h, format, &mut planes[..n], &strides),
    }
}
