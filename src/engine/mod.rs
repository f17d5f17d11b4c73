//! The DAWN engine: GStreamer-free, usable from tests, examples and benchmarks.

pub mod runtime;
