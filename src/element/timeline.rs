//! The audio timeline of one stream: how many input samples have been filled so far (real
//! audio or silence) and where a buffer, a GAP event or the live pacer's overdue silence lands
//! on it. Every source of samples goes through this one type, under the element's one lock,
//! so no span is covered twice and none is dropped.
//!
//! Positions count samples at the input rate from sample 0, whose running time is `base`.
//! Frame `k` of the video covers running time `[base + k·40 ms, base + (k+1)·40 ms)`.

use gst::ClockTime;

/// Timestamp jumps up to this size are jitter: the buffer continues the timeline.
pub const TOLERANCE: ClockTime = ClockTime::from_mseconds(20);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeline {
    rate: u32,
    base: Option<ClockTime>,
    written: u64,
}

impl Timeline {
    pub fn new(rate: u32) -> Self {
        Self {
            rate: rate.max(1),
            base: None,
            written: 0,
        }
    }

    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// Running time of sample 0, once the first data (or the live prelude) started it.
    pub fn base(&self) -> Option<ClockTime> {
        self.base
    }

    /// Starts the timeline at running time `rt` unless it already runs.
    pub fn start(&mut self, rt: ClockTime) {
        self.base.get_or_insert(rt);
    }

    /// Samples filled so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Records `n` more samples filled.
    pub fn advance(&mut self, n: u64) {
        self.written += n;
    }

    /// The sample position at running time `rt` (0 before the base); `None` before the start.
    pub fn position_at(&self, rt: ClockTime) -> Option<u64> {
        let base = self.base?;
        let ns = rt.nseconds().saturating_sub(base.nseconds()) as u128;
        Some((ns * self.rate as u128 / 1_000_000_000) as u64)
    }

    /// Running time of sample position `pos`.
    pub fn time_of(&self, pos: u64) -> Option<ClockTime> {
        let base = self.base?;
        let ns = (pos as u128 * 1_000_000_000 / self.rate as u128) as u64;
        Some(base + ClockTime::from_nseconds(ns))
    }

    /// Where a buffer whose first sample has running time `rt` starts. A buffer without a
    /// timestamp, or within [`TOLERANCE`] of where the timeline stands, continues it; the
    /// first one starts it.
    pub fn buffer_start(&mut self, rt: Option<ClockTime>) -> u64 {
        let Some(rt) = rt else {
            return self.written;
        };
        self.start(rt);
        let expected = self.time_of(self.written).expect("started");
        if rt.nseconds().abs_diff(expected.nseconds()) <= TOLERANCE.nseconds() {
            self.written
        } else {
            self.position_at(rt).expect("started")
        }
    }

    /// Silence needed to bring the timeline up to position `pos` (0 if it is there already).
    pub fn silence_to(&self, pos: u64) -> u64 {
        pos.saturating_sub(self.written)
    }
}

/// Samples of input rate `rate` that make up `frames` video frames (40 ms each), rounded up.
pub fn samples_for_frames(rate: u32, frames: u64) -> u64 {
    (frames as u128 * rate as u128).div_ceil(25) as u64
}

/// Whole video frames covered by `samples` input samples at `rate`.
pub fn frames_in(rate: u32, samples: u64) -> u64 {
    (samples as u128 * 25 / rate as u128) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn t(ms: u64) -> ClockTime {
        ClockTime::from_nseconds(ms * MS)
    }

    #[test]
    fn the_first_buffer_starts_the_timeline_and_jitter_continues_it() {
        let mut tl = Timeline::new(16_000);
        assert_eq!(tl.buffer_start(Some(t(1000))), 0);
        tl.advance(640);
        // 10 ms late or early: still contiguous.
        assert_eq!(tl.buffer_start(Some(t(1050))), 640);
        assert_eq!(tl.buffer_start(Some(t(1030))), 640);
        assert_eq!(tl.buffer_start(None), 640);
        assert_eq!(tl.base(), Some(t(1000)));
    }

    #[test]
    fn holes_and_overlaps_are_positions_on_the_timeline() {
        let mut tl = Timeline::new(16_000);
        tl.buffer_start(Some(t(0)));
        tl.advance(16_000);
        // A hole of 500 ms: the buffer starts at 1.5 s, 8000 samples of silence first.
        let p = tl.buffer_start(Some(t(1500)));
        assert_eq!(p, 24_000);
        assert_eq!(tl.silence_to(p), 8_000);
        // Going back 400 ms: the first 6400 samples overlap what is filled.
        let p = tl.buffer_start(Some(t(600)));
        assert_eq!(p, 9_600);
        assert_eq!(tl.written() - p, 6_400);
    }

    #[test]
    fn positions_and_times_round_trip_at_other_rates() {
        let mut tl = Timeline::new(44_100);
        tl.start(t(40));
        assert_eq!(tl.position_at(t(1040)), Some(44_100));
        assert_eq!(tl.time_of(44_100), Some(t(1040)));
        assert_eq!(tl.position_at(t(0)), Some(0));
        assert_eq!(samples_for_frames(16_000, 3), 1920);
        assert_eq!(samples_for_frames(44_100, 1), 1764);
        assert_eq!(frames_in(16_000, 1919), 2);
        assert_eq!(frames_in(44_100, 1764), 1);
    }
}
