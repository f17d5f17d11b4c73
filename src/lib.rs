//! gst-dawn: the `dawnavatar` GStreamer element and the DAWN talking-head engine behind it.
//!
//! The element ([`element`]) is a thin GStreamer adapter; the work happens in the
//! GStreamer-free [`engine`], which tests, examples and benchmarks use directly.

use gst::glib;

pub mod element;
pub mod engine;
pub mod portrait;

fn plugin_init(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    element::register(plugin)
}

gst::plugin_define!(
    dawn,
    env!("CARGO_PKG_DESCRIPTION"),
    plugin_init,
    concat!(env!("CARGO_PKG_VERSION"), "-", env!("COMMIT_ID")),
    "MIT/X11",
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_REPOSITORY"),
    env!("BUILD_REL_DATE")
);
