//! The `audio_src` pad task: the input audio, unchanged, each buffer released once the video
//! frames covering it exist, so a muxer gets both streams in step with no tee and no queue
//! sizing. When the pad is not linked its buffers are dropped and nothing else changes.

use gst::prelude::*;
use gst::subclass::prelude::*;

use super::imp::{CAT, DawnAvatar};
use super::state::{PassItem, State};
use super::timeline::samples_for_frames;

enum Step {
    Pause,
    Buffer(gst::Buffer),
    Event(gst::Event),
    Eos,
}

impl DawnAvatar {
    pub(super) fn audio_loop(&self) {
        let step = {
            let mut s = self.state();
            match next_step(&mut s) {
                Some(step) => step,
                None => {
                    drop(self.shared.wait(s));
                    return;
                }
            }
        };
        match step {
            Step::Pause => {
                let _ = self.audio_srcpad.pause_task();
            }
            Step::Event(ev) => {
                self.ensure_audio_start();
                self.audio_srcpad.push_event(ev);
            }
            Step::Buffer(buffer) => {
                self.ensure_audio_start();
                let end = buffer
                    .pts()
                    .map(|p| p + buffer.duration().unwrap_or_default());
                let res = self.audio_srcpad.push(buffer);
                self.after_audio_push(res, end);
            }
            Step::Eos => {
                self.ensure_audio_start();
                self.audio_srcpad.push_event(gst::event::Eos::new());
                gst::debug!(CAT, imp = self, "audio pass-through done, EOS");
                let _ = self.audio_srcpad.pause_task();
            }
        }
    }

    /// A stream-start of our own before the first item of a stream.
    fn ensure_audio_start(&self) {
        if self
            .audio_srcpad
            .sticky_event::<gst::event::StreamStart>(0)
            .is_none()
        {
            self.audio_srcpad.push_event(self.stream_start("audio"));
        }
    }

    fn after_audio_push(
        &self,
        res: Result<gst::FlowSuccess, gst::FlowError>,
        end: Option<gst::ClockTime>,
    ) {
        {
            let mut s = self.state();
            let c = s.flow.update_pad_flow(&self.audio_srcpad, res);
            s.flow_result = c;
            if let (Some(end), Some(seg)) = (end, s.stream.segment.as_ref()) {
                s.stream.audio_position = seg.to_stream_time(end);
            }
        }
        self.shared.notify();
        match res {
            Ok(_) | Err(gst::FlowError::NotLinked) => {}
            Err(gst::FlowError::Flushing) | Err(gst::FlowError::Eos) => {
                let _ = self.audio_srcpad.pause_task();
            }
            Err(err) => {
                gst::element_imp_error!(
                    self,
                    gst::StreamError::Failed,
                    ("Streaming stopped on audio_src, reason {:?}", err)
                );
                self.audio_srcpad.push_event(gst::event::Eos::new());
                let _ = self.audio_srcpad.pause_task();
            }
        }
    }
}

/// Under the lock: the next item whose video exists, or `None` to wait.
fn next_step(s: &mut State) -> Option<Step> {
    if s.flushing || s.stopping {
        return Some(Step::Pause);
    }
    let rate = s.stream.timeline.rate();
    let covered = samples_for_frames(rate, s.stream.covered_frames());
    // Once every frame of the stream exists (or the video ended), nothing more will be
    // covered: the tail shorter than a frame and the EOS go out too. Waiting for the video's
    // EOS instead would deadlock a muxer that waits for this pad's EOS to take the last frames.
    let complete = s
        .stream
        .total_frames
        .is_some_and(|n| s.stream.covered_frames() >= n);
    let all = complete || s.stream.video_eos || s.error;
    match s.stream.pass.front()? {
        PassItem::Buffer { end, .. } if *end > covered && !all => None,
        PassItem::Eos if !all => None,
        _ => Some(match s.stream.pass.pop_front()? {
            PassItem::Buffer { buffer, .. } => Step::Buffer(buffer),
            PassItem::Event(ev) => Step::Event(ev),
            PassItem::Eos => Step::Eos,
        }),
    }
}
