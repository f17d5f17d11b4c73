//! A speech file played as a live source, in a loop: decoded once into memory, then handed to
//! the live feed 20 ms at a time, so a viewer who joins at any moment finds the avatar talking.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use gst::prelude::*;

use crate::live_feed::Format;

/// Longest file accepted: it is held in memory (48 kHz stereo: 11.5 MB a minute).
const MAX_MINUTES: u64 = 30;

/// Decodes any file GStreamer reads into interleaved S16 samples of `format`.
pub fn decode(path: &Path, format: Format) -> Result<Vec<i16>> {
    let pipeline = gst::parse::launch(&format!(
        "filesrc name=file ! decodebin ! audioconvert ! audioresample ! {} ! \
         appsink name=sink sync=false",
        format.caps()
    ))?
    .downcast::<gst::Pipeline>()
    .unwrap();
    pipeline
        .by_name("file")
        .unwrap()
        .set_property("location", path);
    let sink = pipeline
        .by_name("sink")
        .unwrap()
        .downcast::<gst_app::AppSink>()
        .unwrap();
    pipeline.set_state(gst::State::Playing)?;
    let result = pull_all(&pipeline, &sink, format);
    let _ = pipeline.set_state(gst::State::Null);
    let samples = result.with_context(|| format!("decoding {}", path.display()))?;
    if samples.is_empty() {
        bail!("{} holds no audio", path.display());
    }
    Ok(samples)
}

fn pull_all(pipeline: &gst::Pipeline, sink: &gst_app::AppSink, format: Format) -> Result<Vec<i16>> {
    let max = (format.rate * format.channels) as usize * 60 * MAX_MINUTES as usize;
    let bus = pipeline.bus().unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut out = Vec::new();
    while !sink.is_eos() {
        if let Some(msg) = bus.pop_filtered(&[gst::MessageType::Error])
            && let gst::MessageView::Error(e) = msg.view()
        {
            bail!("{}", e.error());
        }
        if Instant::now() > deadline {
            bail!("decoding took more than two minutes");
        }
        let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_mseconds(100)) else {
            continue;
        };
        let map = sample.buffer().context("empty sample")?.map_readable()?;
        out.extend(
            map.chunks_exact(2)
                .map(|b| i16::from_le_bytes([b[0], b[1]])),
        );
        if out.len() > max {
            bail!("longer than {MAX_MINUTES} minutes; cut it or use a live --source");
        }
    }
    Ok(out)
}

/// The feed's sample generator: the file over and over.
pub fn looping(samples: Vec<i16>) -> impl FnMut(&mut [i16]) -> bool + Send + 'static {
    let mut pos = 0;
    move |out: &mut [i16]| {
        for s in out.iter_mut() {
            *s = samples[pos];
            pos = (pos + 1) % samples.len();
        }
        true
    }
}
