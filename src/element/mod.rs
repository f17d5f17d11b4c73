//! The `dawnavatar` element.

use gst::glib;
use gst::prelude::*;

mod audio_src;
mod caps;
mod imp;
mod portrait;
mod portrait_loader;
mod properties;
pub mod settings;
mod sink;
mod src_pads;
mod state;
mod timeline;
mod video_src;
mod worker;

pub use settings::{ExecutionProvider, OutputMode};

/// The one-sentence description `gst-inspect-1.0 dawnavatar` shows.
pub const DESCRIPTION: &str =
    "Animates one portrait with speech using the DAWN talking-head model on ONNX Runtime";

/// The long documentation (the element's `doc` metadata field).
pub const DOCUMENTATION: &str = "\
Input: speech as 16 kHz mono F32LE or S16LE audio on `sink`. Output: raw video at 25 fps on \
`src`, frame k covering [start + k x 40 ms, start + (k+1) x 40 ms) of the audio timeline, and the \
input audio unchanged on `audio_src`, each buffer released once the frames covering it exist \
(mux both pads; no tee and no queue sizing needed). A stream of N samples gives floor(N / 640) \
frames.

Examples:
  gst-launch-1.0 filesrc location=speech.wav ! decodebin ! audioconvert ! audioresample ! \
dawnavatar name=a image=portrait.jpg model-path=PACK ! videoconvert ! x264enc ! h264parse ! \
mp4mux name=mux ! filesink location=out.mp4  a.audio_src ! audioconvert ! avenc_aac ! mux.
  gst-launch-1.0 pulsesrc ! audioconvert ! audioresample ! dawnavatar image=portrait.jpg \
model-path=PACK ! videoconvert ! autovideosink

Latency (live pipelines): upstream latency + (chunk-frames + lookahead-frames + 13) x 40 ms of \
audio the element waits for + the latency property (processing budget); 2.48 s + upstream with \
the live defaults. Frames have deadlines on the pipeline clock when a sink syncs to it: a frame \
not ready by its deadline is replaced by the previous one (after fewer sampling steps failed to \
keep up), audio overdue by 200 ms is played as silence, and the portrait idles from PLAYING on \
before any audio arrives. Lateness is reported by a warning message per episode, QoS messages \
and the statistics properties.";

glib::wrapper! {
    pub struct DawnAvatar(ObjectSubclass<imp::DawnAvatar>) @extends gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "dawnavatar",
        gst::Rank::NONE,
        DawnAvatar::static_type(),
    )
}
