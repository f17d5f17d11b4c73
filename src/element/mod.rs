//! The `dawnavatar` element.

use gst::glib;
use gst::prelude::*;

mod imp;
mod portrait_loader;
pub mod settings;
mod shared;
mod worker;

pub use settings::{ExecutionProvider, OutputMode};

/// Shown by `gst-inspect-1.0 dawnavatar`: what the element does, an example, and how its
/// latency is made up.
pub const DESCRIPTION: &str = "Animates one portrait with live speech using the DAWN talking-head model \
(PBNet head pose and blinks, A2V-FDM flow diffusion, LFG renderer) on ONNX Runtime, CUDA or CPU. \
Input: 16 kHz mono audio. Output: raw video at 25 fps whose timestamps follow the audio. \
Example: gst-launch-1.0 filesrc location=speech.wav ! decodebin ! audioconvert ! audioresample ! \
dawnavatar image=portrait.jpg model-path=pack ! videoconvert ! autovideosink. \
Latency (live pipelines): upstream latency + (chunk-frames + lookahead-frames + 13) x 40 ms of audio \
the element waits for + the latency property (processing budget). When inference falls behind, \
live pipelines get fewer sampling steps, then repeated frames, never a stall.";

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
