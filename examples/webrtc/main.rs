//! The avatar in a browser: serves a page on http://127.0.0.1:PORT/ that plays the avatar and
//! its speech over WebRTC (webrtcbin, VP8 + Opus). Signalling is a plain HTTP exchange of SDP
//! offer and answer in the manner of WHEP; any number of viewers watch the same running
//! stream, each joining whenever they like.
//!
//! ```text
//! cargo run --release --example webrtc -- --image face.jpg --model PACK --audio speech.wav
//! cargo run --release --example webrtc -- --image face.jpg --model PACK --source autoaudiosrc
//! ```
//!
//! A speech file is played as a live source, in a loop, so late viewers find the avatar
//! talking; a `--source` (a microphone) is live already. `pipelines/webrtc.sh` wraps this.

#[path = "../common/live_feed.rs"]
mod live_feed;
mod looped_file;
mod offer;
mod stream;
mod viewer;
mod whep;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use gst::prelude::*;

use stream::Input;
use viewer::Event;

struct Args {
    image: PathBuf,
    model: PathBuf,
    audio: Option<PathBuf>,
    source: Option<String>,
    bind: String,
    port: u16,
    stun: Option<String>,
    max_viewers: usize,
    props: Vec<String>,
}

const USAGE: &str = "usage: webrtc --image PORTRAIT --model PACK (--audio SPEECH | --source GST-SOURCE) \
[--port 8080 (0: any free port)] [--bind 127.0.0.1] [--stun stun://host:port] [--max-viewers 16] \
[--set prop=value]...";

fn parse_args() -> Result<Args> {
    let mut a = Args {
        image: PathBuf::new(),
        model: PathBuf::new(),
        audio: None,
        source: None,
        bind: "127.0.0.1".into(),
        port: 8080,
        stun: None,
        max_viewers: 16,
        props: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut v = || {
            it.next()
                .with_context(|| format!("{flag} needs a value\n{USAGE}"))
        };
        match flag.as_str() {
            "--image" => a.image = v()?.into(),
            "--model" => a.model = v()?.into(),
            "--audio" => a.audio = Some(v()?.into()),
            "--source" => a.source = Some(v()?),
            "--bind" => a.bind = v()?,
            "--port" => a.port = v()?.parse().context("--port takes a number")?,
            "--stun" => a.stun = Some(v()?),
            "--max-viewers" => a.max_viewers = v()?.parse().context("--max-viewers")?,
            "--set" => a.props.push(v()?),
            _ => bail!("unknown argument {flag}\n{USAGE}"),
        }
    }
    if a.image.as_os_str().is_empty() || a.model.as_os_str().is_empty() {
        bail!("--image and --model are required\n{USAGE}");
    }
    if a.audio.is_some() == a.source.is_some() {
        bail!("give either --audio SPEECH or --source GST-SOURCE\n{USAGE}");
    }
    if let Some(f) = &a.audio
        && !f.is_file()
    {
        bail!("speech file {} not found", f.display());
    }
    Ok(a)
}

/// 48 kHz stereo: what Opus carries, and enough for any speech file.
const FEED: live_feed::Format = live_feed::Format {
    rate: 48_000,
    channels: 2,
};

fn main() {
    if let Err(e) = run() {
        eprintln!("webrtc: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let args = parse_args()?;
    gst::init()?;
    gstdawn::plugin_register_static()?;
    stream::check_elements()?;
    let input = match &args.source {
        Some(s) => Input::Source(s.clone()),
        None => Input::Feed,
    };
    let stream = stream::build(&input, &args.image, &args.model, &args.props)?;
    if let (Some(file), Some(src)) = (&args.audio, stream.feed()) {
        let samples = looped_file::decode(file, FEED)?;
        live_feed::configure(&src, FEED);
        live_feed::spawn(src, FEED, looped_file::looping(samples))?;
    }
    let http = tiny_http::Server::http((args.bind.as_str(), args.port))
        .map_err(|e| anyhow!("cannot listen on {}:{}: {e}", args.bind, args.port))?;
    let port = http.server_addr().to_ip().map_or(args.port, |a| a.port());
    if stream.pipeline.set_state(gst::State::Playing).is_err() {
        let why = stream
            .pipeline
            .bus()
            .and_then(|b| b.pop_filtered(&[gst::MessageType::Error]))
            .and_then(|m| match m.view() {
                gst::MessageView::Error(e) => Some(e.error().to_string()),
                _ => None,
            })
            .unwrap_or_else(|| "no reason given".into());
        bail!("the pipeline could not start: {why}");
    }
    let _ = stream.pipeline.state(gst::ClockTime::from_seconds(5));
    stream.sync_latency_at_start(Duration::from_secs(30))?;
    let (tx, events) = mpsc::channel();
    let app = Arc::new(whep::App {
        stream,
        viewers: Mutex::new(HashMap::new()),
        stun: args.stun.clone(),
        max_viewers: args.max_viewers,
        events: Mutex::new(tx),
    });
    let server = app.clone();
    std::thread::spawn(move || whep::serve(http, server));
    println!("webrtc: serving http://{}:{port}/", args.bind);
    main_loop(&app, &events)
}

/// Bus messages, viewer events and a status line every 5 s, until an error or EOS.
fn main_loop(app: &whep::App, events: &mpsc::Receiver<(String, Event)>) -> Result<()> {
    let bus = app.stream.pipeline.bus().unwrap();
    let mut last_status = Instant::now();
    // Events of viewers whose POST has not returned yet wait here (a while at most).
    let mut pending: Vec<(Instant, String, Event)> = Vec::new();
    loop {
        if let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(100)) {
            match msg.view() {
                gst::MessageView::Error(e) => {
                    let _ = app.stream.pipeline.set_state(gst::State::Null);
                    bail!("{} ({:?})", e.error(), e.debug());
                }
                gst::MessageView::Eos(_) => break,
                gst::MessageView::Warning(w) => eprintln!("webrtc: warning: {}", w.error()),
                gst::MessageView::Latency(_) => {
                    app.stream.sync_latency();
                }
                _ => {}
            }
        }
        pending.extend(events.try_iter().map(|(id, e)| (Instant::now(), id, e)));
        pending.retain(|(t, id, event)| {
            !handle(app, id, event) && t.elapsed() < Duration::from_secs(30)
        });
        if last_status.elapsed() >= Duration::from_secs(5) {
            last_status = Instant::now();
            print_status(app);
            drop_silent_viewers(app);
        }
    }
    app.stream.pipeline.set_state(gst::State::Null)?;
    Ok(())
}

/// Acts on a viewer event; false when the viewer is not registered yet (its POST is still
/// being answered), to try again later.
fn handle(app: &whep::App, id: &str, event: &Event) -> bool {
    match event {
        Event::Connected => {
            let viewers = app.viewers.lock().unwrap();
            let Some(v) = viewers.get(id) else {
                return false;
            };
            v.open();
            app.stream.request_key_frame();
            eprintln!("webrtc: viewer {id} connected");
        }
        Event::Gone => {
            app.remove(id);
        }
    }
    true
}

fn drop_silent_viewers(app: &whep::App) {
    let silent: Vec<String> = app
        .viewers
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, v)| v.silent_for() > viewer::SILENCE_LIMIT)
        .map(|(id, _)| id.clone())
        .collect();
    for id in silent {
        eprintln!(
            "webrtc: viewer {id} sent no RTCP for {SILENCE:?}; dropping it",
            SILENCE = viewer::SILENCE_LIMIT
        );
        app.remove(&id);
    }
}

fn print_status(app: &whep::App) {
    let a = &app.stream.avatar;
    eprintln!(
        "webrtc: {} viewer(s) | generated {} repeated {} dropped {} | latency {}",
        app.viewers.lock().unwrap().len(),
        a.property::<u64>("frames-generated"),
        a.property::<u64>("frames-repeated"),
        a.property::<u64>("frames-dropped"),
        app.stream
            .latency()
            .map_or("?".into(), |l| format!("{} ms", l.mseconds())),
    );
}
