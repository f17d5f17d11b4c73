//! Live avatar: the default microphone (or any audio source) drives the portrait, shown in a
//! window or sent to any video sink. Prints live statistics every second.
//!
//! ```text
//! cargo run --release --example live -- --image face.jpg --model PACK
//! cargo run --release --example live -- --image face.jpg --model PACK \
//!     --source "pulsesrc device=alsa_input.usb-mic" --sink "v4l2sink device=/dev/video10"
//! ```

use anyhow::{Context, Result};
use gst::prelude::*;

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let (mut image, mut model) = (None, None);
    let mut source = "autoaudiosrc".to_string();
    let mut sink = "autovideosink".to_string();
    let mut props = Vec::new();
    while let Some(a) = args.next() {
        let mut v = || args.next().context("missing value");
        match a.as_str() {
            "--image" => image = Some(v()?),
            "--model" => model = Some(v()?),
            "--source" => source = v()?,
            "--sink" => sink = v()?,
            "--set" => props.push(v()?),
            _ => {
                eprintln!(
                    "usage: live --image PORTRAIT --model PACK [--source GST-SOURCE] [--sink GST-SINK] [--set prop=value]..."
                );
                std::process::exit(2);
            }
        }
    }
    let (Some(image), Some(model)) = (image, model) else {
        anyhow::bail!("--image and --model are required");
    };
    gst::init()?;
    gstdawn::plugin_register_static()?;
    let desc = format!(
        "{source} ! audioconvert ! audioresample ! dawnavatar name=avatar image=\"{image}\" \
         model-path=\"{model}\" {} ! videoconvert ! videoscale ! video/x-raw,width=512,height=512 ! {sink}",
        props.join(" ")
    );
    let pipeline = gst::parse::launch(&desc)
        .context("building the pipeline")?
        .downcast::<gst::Pipeline>()
        .unwrap();
    let avatar = pipeline.by_name("avatar").unwrap();
    pipeline
        .set_state(gst::State::Playing)
        .context("starting the pipeline (see the error above)")?;
    let bus = pipeline.bus().unwrap();
    eprintln!("live: speak into the microphone; Ctrl-C stops");
    loop {
        if let Some(msg) = bus.timed_pop(gst::ClockTime::from_seconds(1)) {
            match msg.view() {
                gst::MessageView::Eos(_) => break,
                gst::MessageView::Error(e) => {
                    pipeline.set_state(gst::State::Null)?;
                    anyhow::bail!("{} ({:?})", e.error(), e.debug());
                }
                gst::MessageView::Warning(w) => eprintln!("warning: {}", w.error()),
                gst::MessageView::Latency(_) => {
                    let _ = pipeline.recalculate_latency();
                }
                _ => {}
            }
        }
        let q = {
            let mut q = gst::query::Latency::new();
            pipeline.query(&mut q).then(|| q.result().1)
        };
        eprint!(
            "\rgenerated {} repeated {} dropped {} | RTF {:.2} | steps {} | latency {}   ",
            avatar.property::<u64>("frames-generated"),
            avatar.property::<u64>("frames-repeated"),
            avatar.property::<u64>("frames-dropped"),
            avatar.property::<f64>("real-time-factor"),
            avatar.property::<u32>("current-sampling-steps"),
            q.map(|l| l.to_string()).unwrap_or_default(),
        );
    }
    pipeline.set_state(gst::State::Null)?;
    Ok(())
}
