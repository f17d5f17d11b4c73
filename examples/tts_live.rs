//! Text to avatar, live: an application feeds speech into a running pipeline while a
//! text-to-speech engine synthesises it, and the avatar idles on silence between utterances.
//! This one reads utterances from stdin, one per line (a chat bot's or an LLM's sentences as
//! they come), and has espeak-ng speak each; its audio is pushed into an appsrc chunk by
//! chunk as espeak-ng writes it, without waiting for the utterance to finish.
//!
//! ```text
//! echo "Hello, I am a talking head." | cargo run --release --example tts_live -- \
//!     --image face.jpg --model PACK                       # window + speakers
//! some-llm-cli | cargo run --release --example tts_live -- --image face.jpg --model PACK \
//!     --out session.mp4                                   # or record to MP4
//! ```
//!
//! The appsrc is live and fed every 20 ms from a queue of synthesised samples, with silence
//! whenever the queue is empty: the avatar's clock never stops, speech starts as soon as its
//! first chunk is ready, and the element sees an ordinary live source. At the end of stdin the
//! queued speech is played out, then the stream ends.

#[path = "common/live_feed.rs"]
mod live_feed;

use std::collections::VecDeque;
use std::io::{BufRead, Read, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, bail};
use gst::prelude::*;

/// espeak-ng's output: 22.05 kHz mono S16 (its standard voices).
const TTS: live_feed::Format = live_feed::Format {
    rate: 22_050,
    channels: 1,
};

struct Args {
    image: String,
    model: String,
    out: Option<String>,
    sink: String,
    voice: Option<String>,
    props: Vec<String>,
}

const USAGE: &str = "usage: tts_live --image PORTRAIT --model PACK [--out OUT.mp4 | --sink GST-VIDEO-SINK] \
[--voice VOICE] [--set prop=value]...   (utterances on stdin, one per line)";

fn parse_args() -> Result<Args> {
    let mut a = Args {
        image: String::new(),
        model: String::new(),
        out: None,
        sink: "autovideosink".into(),
        voice: None,
        props: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut v = || {
            it.next()
                .with_context(|| format!("{flag} needs a value\n{USAGE}"))
        };
        match flag.as_str() {
            "--image" => a.image = v()?,
            "--model" => a.model = v()?,
            "--out" => a.out = Some(v()?),
            "--sink" => a.sink = v()?,
            "--voice" => a.voice = Some(v()?),
            "--set" => a.props.push(v()?),
            _ => bail!("unknown argument {flag}\n{USAGE}"),
        }
    }
    if a.image.is_empty() || a.model.is_empty() {
        bail!("--image and --model are required\n{USAGE}");
    }
    Ok(a)
}

/// Synthesised samples waiting to be played, and whether more may come.
#[derive(Default)]
struct Speech {
    queue: Mutex<VecDeque<i16>>,
    finished: AtomicBool,
}

fn main() {
    if let Err(e) = run() {
        eprintln!("tts_live: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let args = parse_args()?;
    check_espeak()?;
    gst::init()?;
    gstdawn::plugin_register_static()?;
    let pipeline = build(&args)?;
    let avatar = pipeline.by_name("avatar").unwrap();
    let src = pipeline
        .by_name("speech")
        .unwrap()
        .downcast::<gst_app::AppSrc>()
        .unwrap();
    live_feed::configure(&src, TTS);
    let speech = Arc::new(Speech::default());
    live_feed::spawn(src, TTS, play_or_idle(speech.clone()))?;
    if pipeline.set_state(gst::State::Playing).is_err() {
        let why = pipeline
            .bus()
            .and_then(|b| b.timed_pop_filtered(gst::ClockTime::SECOND, &[gst::MessageType::Error]))
            .and_then(|m| match m.view() {
                gst::MessageView::Error(e) => Some(e.error().to_string()),
                _ => None,
            })
            .unwrap_or_else(|| "no reason given".into());
        bail!("the pipeline could not start: {why}");
    }
    let voice = args.voice.clone();
    let tts = std::thread::spawn(move || speak_stdin(&speech, voice.as_deref()));
    let result = wait_for_eos(&pipeline);
    pipeline.set_state(gst::State::Null)?;
    if tts.is_finished() {
        tts.join().expect("tts thread")?;
    }
    result?;
    eprintln!(
        "tts_live: generated {} repeated {} frames",
        avatar.property::<u64>("frames-generated"),
        avatar.property::<u64>("frames-repeated")
    );
    Ok(())
}

fn check_espeak() -> Result<()> {
    let ok = Command::new("espeak-ng")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        bail!("espeak-ng not found: install it (apt install espeak-ng; tools/setup.sh does)");
    }
    Ok(())
}

/// The audio is split before its conversion to the avatar's 16 kHz: the recording or the
/// speakers get the speech as synthesised. The file sink syncs to the clock like a live sink:
/// a non-syncing sink would leave the pipeline latency at 0, and the element would count
/// every frame as late.
fn build(a: &Args) -> Result<gst::Pipeline> {
    let avatar = format!("dawnavatar name=avatar {}", a.props.join(" "));
    let unbounded = "queue max-size-buffers=0 max-size-bytes=0 max-size-time=0";
    let desc = match &a.out {
        Some(_) => format!(
            "appsrc name=speech ! tee name=t \
             t. ! queue ! audioconvert ! audioresample ! audio/x-raw,rate=16000,channels=1 ! \
               {avatar} ! videoconvert ! video/x-raw,format=I420 ! \
               x264enc tune=zerolatency speed-preset=veryfast key-int-max=50 ! h264parse ! \
               queue ! mp4mux name=mux ! filesink name=file sync=true \
             t. ! {unbounded} ! audioconvert ! audioresample ! voaacenc bitrate=64000 ! \
               aacparse ! mux."
        ),
        None => format!(
            "appsrc name=speech ! tee name=t \
             t. ! queue ! audioconvert ! audioresample ! audio/x-raw,rate=16000,channels=1 ! \
               {avatar} ! videoconvert ! {sink} \
             t. ! {unbounded} ! audioconvert ! audioresample ! autoaudiosink",
            sink = a.sink
        ),
    };
    let pipeline = gst::parse::launch(&desc)
        .with_context(|| format!("building the pipeline: {desc}"))?
        .downcast::<gst::Pipeline>()
        .unwrap();
    // Paths as properties, not in the description, so that any path works.
    let avatar = pipeline.by_name("avatar").unwrap();
    avatar.set_property("image", &a.image);
    avatar.set_property("model-path", &a.model);
    if let Some(out) = &a.out {
        pipeline
            .by_name("file")
            .unwrap()
            .set_property("location", out);
    }
    Ok(pipeline)
}

/// The feed's sample generator: queued speech, else silence; ends once stdin is done and
/// everything was played.
fn play_or_idle(speech: Arc<Speech>) -> impl FnMut(&mut [i16]) -> bool + Send + 'static {
    move |out: &mut [i16]| {
        let mut q = speech.queue.lock().unwrap();
        if q.is_empty() && speech.finished.load(Ordering::Acquire) {
            return false;
        }
        let n = out.len().min(q.len());
        for (o, s) in out.iter_mut().zip(q.drain(..n)) {
            *o = s;
        }
        true
    }
}

/// One espeak-ng run per line of stdin; marks the speech finished at the end of stdin.
fn speak_stdin(speech: &Speech, voice: Option<&str>) -> Result<()> {
    let result = (|| {
        for line in std::io::stdin().lock().lines() {
            let line = line.context("reading stdin")?;
            if !line.trim().is_empty() {
                speak(speech, line.trim(), voice)?;
            }
        }
        Ok(())
    })();
    speech.finished.store(true, Ordering::Release);
    if let Err(e) = &result {
        eprintln!("tts_live: {e:#}");
    }
    result
}

/// Streams one utterance: espeak-ng writes a WAV header, then samples as it synthesises them;
/// each chunk read goes to the queue at once.
fn speak(speech: &Speech, text: &str, voice: Option<&str>) -> Result<()> {
    let mut cmd = Command::new("espeak-ng");
    cmd.arg("--stdout");
    if let Some(v) = voice {
        cmd.args(["-v", v]);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("running espeak-ng")?;
    // The text goes through stdin so that nothing in it is taken for an option.
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(text.as_bytes())?;
    drop(stdin);
    let mut out = child.stdout.take().unwrap();
    let mut header = [0u8; 44];
    out.read_exact(&mut header)
        .context("espeak-ng wrote no WAV header")?;
    let rate = u32::from_le_bytes(header[24..28].try_into().unwrap());
    let channels = u16::from_le_bytes([header[22], header[23]]);
    if (rate, channels as u32) != (TTS.rate, TTS.channels) {
        bail!(
            "espeak-ng speaks at {rate} Hz, {channels} channel(s); this example expects 22050 Hz mono"
        );
    }
    let mut chunk = [0u8; 4096];
    let mut pending = Vec::new();
    loop {
        let n = out.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        pending.extend_from_slice(&chunk[..n]);
        let whole = pending.len() / 2 * 2;
        let samples = pending[..whole]
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]));
        speech.queue.lock().unwrap().extend(samples);
        pending.drain(..whole);
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("espeak-ng failed ({status}) on {text:?}");
    }
    Ok(())
}

/// Until EOS; an error message becomes the error.
fn wait_for_eos(pipeline: &gst::Pipeline) -> Result<()> {
    let bus = pipeline.bus().unwrap();
    for msg in bus.iter_timed(gst::ClockTime::NONE) {
        match msg.view() {
            gst::MessageView::Eos(_) => return Ok(()),
            gst::MessageView::Error(e) => bail!("{} ({:?})", e.error(), e.debug()),
            gst::MessageView::Warning(w) => eprintln!("tts_live: warning: {}", w.error()),
            gst::MessageView::Latency(_) => {
                let _ = pipeline.recalculate_latency();
            }
            _ => {}
        }
    }
    Ok(())
}
