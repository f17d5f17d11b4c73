//! gst-dawn: the `dawnavatar` GStreamer element and the DAWN talking-head engine behind it.

pub mod engine;
