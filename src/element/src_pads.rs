//! Queries and events arriving on the two src pads: latency, caps, position, seeks (sent
//! upstream once though both pads carry them), the pipeline's LATENCY event (which gives frames
//! their deadlines) and QoS from downstream.

use gst::prelude::*;
use gst::subclass::prelude::*;

use super::caps;
use super::imp::{CAT, DawnAvatar, FRAME_DURATION};

impl DawnAvatar {
    /// Our share of the latency (live): the audio a chunk waits for beyond its first frame plus
    /// the processing budget.
    pub(super) fn own_latency(&self) -> gst::ClockTime {
        let settings = self.settings.lock().unwrap().clone();
        let resolution = self
            .state()
            .loaded
            .as_ref()
            .map_or(128, |l| l.engine.resolution());
        let wait = settings.chunking(true, resolution, None).wait_frames() as u64;
        FRAME_DURATION * wait + gst::ClockTime::from_mseconds(settings.latency_ms as u64)
    }

    pub(super) fn src_query(&self, pad: &gst::Pad, query: &mut gst::QueryRef) -> bool {
        use gst::QueryViewMut;
        match query.view_mut() {
            QueryViewMut::Latency(q) => {
                let mut upstream = gst::query::Latency::new();
                if !self.sinkpad.peer_query(&mut upstream) {
                    return false;
                }
                let (live, min, max) = upstream.result();
                if live {
                    let ours = self.own_latency();
                    q.set(true, min + ours, max.map(|m| m + ours));
                    gst::debug!(CAT, imp = self, "latency: upstream {min} + ours {ours}");
                } else {
                    q.set(false, min, max);
                }
                true
            }
            QueryViewMut::Caps(q) => {
                let caps = if pad == &self.srcpad {
                    caps::video_caps(self.output_size())
                } else {
                    self.sinkpad
                        .current_caps()
                        .unwrap_or_else(|| self.sinkpad.peer_query_caps(Some(&caps::sink_caps())))
                };
                let caps = match q.filter() {
                    Some(f) => f.intersect_with_mode(&caps, gst::CapsIntersectMode::First),
                    None => caps,
                };
                q.set_result(&caps);
                true
            }
            QueryViewMut::Position(q) if q.format() == gst::Format::Time => {
                // Output time, so progress reports show how far the video really is.
                let position = {
                    let s = self.state();
                    if pad == &self.srcpad {
                        s.stream
                            .timeline
                            .base()
                            .map(|b| b + FRAME_DURATION * s.stream.next_frame)
                            .zip(s.stream.video_segment.as_ref())
                            .and_then(|(rt, seg)| {
                                let pts = seg.position_from_running_time(rt)?;
                                seg.to_stream_time(pts)
                            })
                    } else {
                        s.stream.audio_position
                    }
                };
                q.set(position.unwrap_or(gst::ClockTime::ZERO));
                true
            }
            _ => gst::Pad::query_default(pad, Some(&*self.obj()), query),
        }
    }

    pub(super) fn src_event(&self, pad: &gst::Pad, event: gst::Event) -> bool {
        use gst::EventView;
        match event.view() {
            EventView::Latency(l) => {
                {
                    let mut s = self.state();
                    s.latency = Some(s.latency.map_or(l.latency(), |v| v.max(l.latency())));
                    s.downstream_syncs = None;
                }
                self.shared.notify();
                gst::Pad::event_default(pad, Some(&*self.obj()), event)
            }
            EventView::Seek(_) => {
                // A pipeline seek reaches both src pads: forward it upstream once.
                let seqnum = event.seqnum();
                let first = {
                    let mut s = self.state();
                    s.last_seek.replace(seqnum) != Some(seqnum)
                };
                if first {
                    self.sinkpad.push_event(event)
                } else {
                    true
                }
            }
            EventView::Qos(q) => {
                let (kind, proportion, diff, ts) = q.get();
                gst::log!(
                    CAT,
                    obj = pad,
                    "downstream QoS {kind:?}: proportion {proportion:.2}, diff {diff} ns at {ts:?}"
                );
                true
            }
            _ => gst::Pad::event_default(pad, Some(&*self.obj()), event),
        }
    }
}
