//! The shared part of the pipeline: one audio input, one avatar, one VP8 encode and one Opus
//! encode, each ending in a tee that every viewer branches from. Viewers join and leave without
//! touching it.
//!
//! ```text
//! input ─ tee ─ queue ─ 16 kHz mono ─ dawnavatar ─ VP8 ─ queue ─ clocksync ─ tee "video" ─ viewers
//!           └── queue ─ 48 kHz stereo ─ Opus ────────────────── clocksync ─ tee "audio" ─ viewers
//! ```
//!
//! The audio is split before the 16 kHz conversion so viewers hear the source quality. The
//! clocksyncs release both streams at the time they are shown: the video at running time + its
//! upstream latency (the avatar's), the audio held back by the difference between the two
//! latencies ([`Stream::sync_latency`]). Sound and picture thus leave together and the tees
//! carry live, current data. (webrtcbin's own network sink cannot do this alignment: its
//! latency query stops inside webrtcbin, so it is configured with no latency at all.) Each tee
//! also feeds a fakesink, which keeps the pipeline latency configured while nobody watches.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use gst::prelude::*;

/// Where the avatar's speech comes from.
pub enum Input {
    /// An appsrc that the caller feeds (a looped file).
    Feed,
    /// A GStreamer source description (a microphone: `autoaudiosrc`, `pulsesrc device=…`).
    Source(String),
}

pub struct Stream {
    pub pipeline: gst::Pipeline,
    pub avatar: gst::Element,
    pub encoder: gst::Element,
    pub video: gst::Element,
    pub audio: gst::Element,
    video_sync: gst::Element,
    audio_sync: gst::Element,
}

/// A viewer's queue: the tees carry current data, so one second is plenty; a viewer that
/// cannot keep up loses its own oldest packets instead of blocking the tee.
pub const VIEWER_QUEUE: &str =
    "queue max-size-buffers=0 max-size-bytes=0 max-size-time=1000000000 leaky=downstream";

/// The avatar pushes each chunk's frames as a burst, up to one latency early.
const EARLY_QUEUE: &str = "queue max-size-buffers=0 max-size-bytes=0 max-size-time=10000000000";

pub fn build(input: &Input, image: &Path, model: &Path, props: &[String]) -> Result<Stream> {
    let source = match input {
        Input::Feed => "appsrc name=feed",
        Input::Source(s) => s,
    };
    let desc = format!(
        "{source} ! tee name=input \
         input. ! queue ! audioconvert ! audioresample ! audio/x-raw,rate=16000,channels=1 ! \
           dawnavatar name=avatar {props} ! \
           videoconvert ! videoscale ! video/x-raw,format=I420,pixel-aspect-ratio=1/1 ! \
           vp8enc name=venc deadline=1 cpu-used=8 threads=2 lag-in-frames=0 end-usage=cbr \
             target-bitrate=0 bits-per-pixel=0.1 keyframe-max-dist=50 error-resilient=default ! \
           {EARLY_QUEUE} ! clocksync name=vsync ! tee name=video allow-not-linked=true \
         input. ! queue max-size-buffers=0 max-size-bytes=0 max-size-time=0 ! \
           audioconvert ! audioresample ! audio/x-raw,rate=48000,channels=2 ! \
           opusenc bitrate=64000 frame-size=20 ! clocksync name=async ! \
           tee name=audio allow-not-linked=true \
         video. ! {VIEWER_QUEUE} ! fakesink sync=true async=false \
         audio. ! {VIEWER_QUEUE} ! fakesink sync=true async=false",
        props = props.join(" "),
    );
    let pipeline = gst::parse::launch(&desc)
        .with_context(|| format!("building the pipeline: {desc}"))?
        .downcast::<gst::Pipeline>()
        .unwrap();
    let get = |name: &str| pipeline.by_name(name).unwrap();
    // Set as properties, not in the description, so that any path works.
    let avatar = get("avatar");
    avatar.set_property(
        "image",
        image.to_str().context("portrait path is not UTF-8")?,
    );
    avatar.set_property(
        "model-path",
        model.to_str().context("pack path is not UTF-8")?,
    );
    Ok(Stream {
        avatar,
        encoder: get("venc"),
        video: get("video"),
        audio: get("audio"),
        video_sync: get("vsync"),
        audio_sync: get("async"),
        pipeline,
    })
}

impl Stream {
    /// The appsrc of [`Input::Feed`].
    pub fn feed(&self) -> Option<gst_app::AppSrc> {
        self.pipeline
            .by_name("feed")
            .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
    }

    /// Asks the encoder for a key frame, so a viewer who just connected sees a picture at once
    /// instead of waiting for the next periodic one (2 s).
    pub fn request_key_frame(&self) {
        let ev = gst_video::UpstreamForceKeyUnitEvent::builder()
            .all_headers(true)
            .build();
        if let Some(pad) = self.encoder.static_pad("src") {
            pad.send_event(ev);
        }
    }

    /// Configures the clocksyncs: a latency query through each one tells it its upstream
    /// latency (the video's includes the avatar's), and the audio is held back by the
    /// difference, so both leave at the time they are shown. None until the stream reports a
    /// live latency (it does not while it starts). Called once playing, and again whenever the
    /// latency changes.
    pub fn sync_latency(&self) -> Option<gst::ClockTime> {
        let _ = self.pipeline.recalculate_latency();
        let through = |e: &gst::Element| {
            let mut q = gst::query::Latency::new();
            let pad = e.static_pad("src")?;
            pad.query(&mut q)
                .then(|| q.result())
                .filter(|r| r.0)
                .map(|r| r.1)
        };
        let (v, a) = (through(&self.video_sync)?, through(&self.audio_sync)?);
        if v.is_zero() {
            return None;
        }
        let offset = v.nseconds() as i64 - a.nseconds() as i64;
        self.audio_sync.set_property("ts-offset", offset.max(0));
        Some(v)
    }

    /// [`Self::sync_latency`] once the stream reports its latency, within `timeout`.
    pub fn sync_latency_at_start(&self, timeout: Duration) -> Result<gst::ClockTime> {
        let t = Instant::now();
        loop {
            if let Some(l) = self.sync_latency() {
                return Ok(l);
            }
            if t.elapsed() > timeout {
                anyhow::bail!("the stream reported no live latency within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The latency the pipeline applies: how far the avatar lags its audio input.
    pub fn latency(&self) -> Option<gst::ClockTime> {
        let mut q = gst::query::Latency::new();
        self.pipeline.query(&mut q).then(|| q.result().1)
    }
}

/// Elements the viewer needs that Debian ships in separate packages.
pub fn check_elements() -> Result<()> {
    let needs = [
        ("webrtcbin", "gstreamer1.0-plugins-bad"),
        ("nicesink", "gstreamer1.0-nice (webrtcbin's ICE transport)"),
        ("vp8enc", "gstreamer1.0-plugins-good"),
        ("rtpvp8pay", "gstreamer1.0-plugins-good"),
        ("opusenc", "gstreamer1.0-plugins-base"),
        ("rtpopuspay", "gstreamer1.0-plugins-good"),
        ("dtlssrtpenc", "gstreamer1.0-plugins-bad"),
    ];
    for (element, package) in needs {
        if gst::ElementFactory::find(element).is_none() {
            anyhow::bail!(
                "GStreamer element '{element}' is missing: install {package} (tools/setup.sh does)"
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// How late (running time now − PTS) each buffer passes the tee's sink pad.
    fn lags(tee: &gst::Element, pipeline: &gst::Pipeline) -> Arc<Mutex<Vec<f64>>> {
        let out = Arc::new(Mutex::new(Vec::new()));
        let (o, p) = (out.clone(), pipeline.clone());
        tee.static_pad("sink")
            .unwrap()
            .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
                if let (Some(pts), Some(now)) = (
                    info.buffer().and_then(|b| b.pts()),
                    p.current_running_time(),
                ) {
                    let lag = now.nseconds() as f64 - pts.nseconds() as f64;
                    o.lock().unwrap().push(lag / 1e9);
                }
                gst::PadProbeReturn::Ok
            });
        out
    }

    fn median(v: &[f64]) -> f64 {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    }

    #[test]
    fn sound_and_picture_leave_the_tees_together() {
        gst::init().unwrap();
        gstdawn::plugin_register_static().unwrap();
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let input = Input::Source("audiotestsrc is-live=true wave=pink-noise volume=0.2".into());
        let s = build(
            &input,
            &root.join("tests/data/skimage_astronaut_128.png"),
            &root.join("tests/models/tiny128"),
            &["execution-provider=cpu".into(), "detect-face=false".into()],
        )
        .unwrap();
        let (video, audio) = (lags(&s.video, &s.pipeline), lags(&s.audio, &s.pipeline));
        s.pipeline.set_state(gst::State::Playing).unwrap();
        let _ = s.pipeline.state(gst::ClockTime::from_seconds(10));
        s.sync_latency_at_start(Duration::from_secs(10)).unwrap();
        // Runs 6 s of live stream; an error or a stall ends the test with the reason. Within
        // one video frame: audiotestsrc reports no latency but delivers each buffer late by
        // its duration (23 ms).
        let bus = s.pipeline.bus().unwrap();
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(6) {
            if let Some(m) = bus.timed_pop_filtered(
                gst::ClockTime::from_mseconds(100),
                &[gst::MessageType::Error],
            ) {
                s.pipeline.set_state(gst::State::Null).unwrap();
                panic!("pipeline error: {m:?}");
            }
        }
        s.pipeline.set_state(gst::State::Null).unwrap();
        let (v, a) = (video.lock().unwrap().clone(), audio.lock().unwrap().clone());
        assert!(
            v.len() > 25 && a.len() > 50,
            "watchdog: the stream stalled ({} video, {} audio buffers in 6 s)",
            v.len(),
            a.len()
        );
        let (mv, ma) = (median(&v), median(&a));
        println!("leave the tees at PTS + {mv:.3} s (video), {ma:.3} s (audio)");
        assert!(
            mv > 2.0,
            "video leaves at its display time (the avatar's latency): {mv}"
        );
        assert!(
            (mv - ma).abs() < 0.04,
            "sound and picture leave together: video {mv:.3} s, audio {ma:.3} s after their PTS"
        );
    }
}
