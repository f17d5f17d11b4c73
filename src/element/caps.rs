//! The element's caps: what the sink pad takes, what the video pad offers, and the mapping from
//! negotiated video formats to the engine's pixel writers.

use crate::engine::pack::{FPS, SAMPLE_RATE};
use crate::engine::pixels::PixelFormat;

/// Raw video formats the element writes, in order of preference.
const VIDEO_FORMATS: [gst_video::VideoFormat; 13] = [
    gst_video::VideoFormat::Rgb,
    gst_video::VideoFormat::Rgba,
    gst_video::VideoFormat::Bgrx,
    gst_video::VideoFormat::Bgra,
    gst_video::VideoFormat::Rgbx,
    gst_video::VideoFormat::Xrgb,
    gst_video::VideoFormat::Xbgr,
    gst_video::VideoFormat::Argb,
    gst_video::VideoFormat::Abgr,
    gst_video::VideoFormat::Bgr,
    gst_video::VideoFormat::I420,
    gst_video::VideoFormat::Nv12,
    gst_video::VideoFormat::Yuy2,
];

/// The engine's writer for a negotiated format.
pub fn pixel_format(f: gst_video::VideoFormat) -> Option<PixelFormat> {
    use gst_video::VideoFormat as V;
    Some(match f {
        V::Rgb => PixelFormat::Rgb,
        V::Bgr => PixelFormat::Bgr,
        V::Rgba => PixelFormat::Rgba,
        V::Bgra => PixelFormat::Bgra,
        V::Rgbx => PixelFormat::Rgbx,
        V::Bgrx => PixelFormat::Bgrx,
        V::Xrgb => PixelFormat::Xrgb,
        V::Xbgr => PixelFormat::Xbgr,
        V::Argb => PixelFormat::Argb,
        V::Abgr => PixelFormat::Abgr,
        V::I420 => PixelFormat::I420,
        V::Nv12 => PixelFormat::Nv12,
        V::Yuy2 => PixelFormat::Yuy2,
        _ => return None,
    })
}

/// Raw video at 25 fps with square pixels; at a fixed size once the pack and portrait are known.
pub fn video_caps(size: Option<(u32, u32)>) -> gst::Caps {
    let b = gst_video::VideoCapsBuilder::new()
        .format_list(VIDEO_FORMATS)
        .framerate(gst::Fraction::new(FPS as i32, 1))
        .pixel_aspect_ratio(gst::Fraction::new(1, 1));
    match size {
        Some((w, h)) => b.width(w as i32).height(h as i32).build(),
        None => b.build(),
    }
}

/// 16 kHz mono speech as 32-bit float or 16-bit integer samples.
pub fn sink_caps() -> gst::Caps {
    gst_audio::AudioCapsBuilder::new_interleaved()
        .format_list([gst_audio::AudioFormat::F32le, gst_audio::AudioFormat::S16le])
        .rate(SAMPLE_RATE as i32)
        .channels(1)
        .build()
}
