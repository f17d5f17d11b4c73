//! A live audio source built on appsrc: 20 ms buffers pushed at the pace a microphone delivers
//! them, timestamped on the pipeline's running time, from any sample generator (a looped file,
//! text-to-speech chunks, silence between utterances).
//! Declared by the examples that feed live audio (`#[path]`), not by `common`.

use std::thread::JoinHandle;

use anyhow::{Context, Result};
use gst::prelude::*;

/// One buffer, as a sound card would deliver it.
pub const BUFFER_MS: u64 = 20;

/// Interleaved S16LE at `rate` Hz with `channels` channels.
#[derive(Debug, Clone, Copy)]
pub struct Format {
    pub rate: u32,
    pub channels: u32,
}

impl Format {
    pub fn caps(&self) -> gst::Caps {
        gst_audio::AudioCapsBuilder::new_interleaved()
            .format(gst_audio::AudioFormat::S16le)
            .rate(self.rate as i32)
            .channels(self.channels as i32)
            .build()
    }

    /// Sample frames per buffer.
    pub fn frames_per_buffer(&self) -> usize {
        (self.rate as u64 * BUFFER_MS / 1000) as usize
    }
}

/// Sets up `src` as a live source of `format`: time format, no automatic timestamps (the feed
/// stamps each buffer), one buffer of latency.
pub fn configure(src: &gst_app::AppSrc, format: Format) {
    src.set_caps(Some(&format.caps()));
    src.set_is_live(true);
    src.set_format(gst::Format::Time);
    src.set_do_timestamp(false);
    src.set_latency(
        Some(gst::ClockTime::from_mseconds(BUFFER_MS)),
        Some(gst::ClockTime::from_mseconds(BUFFER_MS)),
    );
}

/// Starts the feeding thread. Once the pipeline plays, every 20 ms it asks `fill` for the next
/// buffer's samples (interleaved, zeroed beforehand) and pushes them; `fill` returns false to end
/// the stream (EOS). The thread ends at EOS or when the pipeline stops.
pub fn spawn(
    src: gst_app::AppSrc,
    format: Format,
    mut fill: impl FnMut(&mut [i16]) -> bool + Send + 'static,
) -> Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("live-feed".into())
        .spawn(move || {
            let Some((clock, base, start)) = wait_for_playing(&src) else {
                return;
            };
            let frames = format.frames_per_buffer();
            let mut samples = vec![0i16; frames * format.channels as usize];
            let mut offset = 0u64;
            loop {
                samples.fill(0);
                if !fill(&mut samples) {
                    let _ = src.end_of_stream();
                    return;
                }
                let pts = start + sample_time(offset, format.rate);
                let end = start + sample_time(offset + frames as u64, format.rate);
                // A capture device delivers a buffer once its last sample is recorded.
                let _ = clock.new_single_shot_id(base + end).wait();
                let mut buf = gst::Buffer::from_mut_slice(
                    samples
                        .iter()
                        .flat_map(|s| s.to_le_bytes())
                        .collect::<Vec<u8>>(),
                );
                {
                    let b = buf.get_mut().unwrap();
                    b.set_pts(pts);
                    b.set_duration(end - pts);
                    b.set_offset(offset);
                }
                if src.push_buffer(buf).is_err() {
                    return;
                }
                offset += frames as u64;
            }
        })
        .context("starting the audio feed thread")
}

fn sample_time(offset: u64, rate: u32) -> gst::ClockTime {
    gst::ClockTime::from_nseconds(offset * 1_000_000_000 / rate as u64)
}

/// Waits until the appsrc plays; gives its clock, base time and current running time. None
/// when the pipeline does not reach PLAYING within two minutes (a model that failed to load).
fn wait_for_playing(src: &gst_app::AppSrc) -> Option<(gst::Clock, gst::ClockTime, gst::ClockTime)> {
    let t = std::time::Instant::now();
    while t.elapsed() < std::time::Duration::from_secs(120) {
        if src.current_state() == gst::State::Playing
            && let (Some(clock), Some(base)) = (src.clock(), src.base_time())
        {
            let now = clock.time();
            return Some((clock, base, now.saturating_sub(base)));
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    None
}
