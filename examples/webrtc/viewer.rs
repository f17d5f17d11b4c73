//! One viewer: a bin holding a webrtcbin fed from the shared tees through its own queues and
//! payloaders (so each viewer gets the payload types it offered, and a slow one only drops its
//! own packets). The viewer offers, we answer (WHEP), without trickle ICE: the answer carries
//! all our candidates.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use gst::prelude::*;

use crate::offer::{Kind, Media, Offer};
use crate::stream::{Stream, VIEWER_QUEUE};

/// webrtcbin answers each negotiation step and gathers host candidates within milliseconds;
/// this only bounds a broken set-up.
const STEP_TIMEOUT: Duration = Duration::from_secs(10);

/// A browser sends RTCP receiver reports about once a second; one silent this long has gone
/// without saying goodbye (a crash, a lost network).
pub const SILENCE_LIMIT: Duration = Duration::from_secs(20);

const MSID: &str = "gst-dawn-avatar";

pub struct Viewer {
    bin: gst::Bin,
    /// (tee, its request pad) per stream fed to this viewer.
    taps: Vec<(gst::Element, gst::Pad)>,
    /// When the viewer's last RTCP packet arrived (or when it joined).
    last_heard: Arc<Mutex<Instant>>,
    /// Media flows to the viewer once it is opened (its connection is up); until then its
    /// taps drop buffers, so it starts with current frames instead of a burst of stale ones.
    open: Arc<AtomicBool>,
}

impl Viewer {
    pub fn silent_for(&self) -> Duration {
        self.last_heard.lock().unwrap().elapsed()
    }

    /// Lets media through to the viewer.
    pub fn open(&self) {
        self.open.store(true, Ordering::Release);
    }
}

/// What the viewer reports back while it lives.
pub enum Event {
    Connected,
    /// The connection failed or closed, or the viewer sent an RTCP BYE.
    Gone,
}

/// Adds a viewer for `offer` to the running stream and returns it with the SDP answer.
pub fn join(
    stream: &Stream,
    offer: Offer,
    stun: Option<&str>,
    events: impl Fn(Event) + Send + Sync + 'static,
) -> Result<(Viewer, String)> {
    let (bin, webrtc) = build_bin(&offer.media, stun)?;
    stream
        .pipeline
        .add(&bin)
        .context("adding the viewer to the pipeline")?;
    let viewer = tap(stream, bin, &offer.media)?;
    let events: Arc<dyn Fn(Event) + Send + Sync> = Arc::new(events);
    watch_connection(&webrtc, events.clone());
    watch_rtcp(&webrtc, &viewer.last_heard, events);
    match negotiate(&webrtc, offer.sdp) {
        Ok(answer) => {
            *viewer.last_heard.lock().unwrap() = Instant::now();
            Ok((viewer, answer))
        }
        Err(e) => {
            leave(stream, viewer);
            Err(e)
        }
    }
}

/// Detaches the viewer from the tees and disposes of it.
pub fn leave(stream: &Stream, viewer: Viewer) {
    for (tee, pad) in &viewer.taps {
        tee.release_request_pad(pad);
    }
    let _ = viewer.bin.set_state(gst::State::Null);
    let _ = stream.pipeline.remove(&viewer.bin);
}

/// queue ! payloader ! webrtcbin for each offered m-line, in the offer's order so that
/// webrtcbin pairs its transceivers with the offer's m-lines one to one.
fn build_bin(media: &[Media], stun: Option<&str>) -> Result<(gst::Bin, gst::Element)> {
    let bin = gst::Bin::new();
    let webrtc = gst::ElementFactory::make("webrtcbin")
        .property_from_str("bundle-policy", "max-bundle")
        .build()
        .context("creating webrtcbin (gstreamer1.0-plugins-bad)")?;
    if let Some(stun) = stun {
        webrtc.set_property("stun-server", stun);
    }
    bin.add(&webrtc)?;
    for m in media {
        let queue = gst::parse::launch(VIEWER_QUEUE)?;
        let pay = match m.kind {
            Kind::Video => gst::ElementFactory::make("rtpvp8pay")
                .property_from_str("picture-id-mode", "15-bit")
                .build()?,
            Kind::Audio => gst::ElementFactory::make("rtpopuspay").build()?,
        };
        pay.set_property("pt", m.payload as u32);
        pay.set_property("mtu", 1200u32);
        bin.add_many([&queue, &pay])?;
        queue.link(&pay)?;
        let sink = webrtc
            .request_pad_simple("sink_%u")
            .context("webrtcbin sink pad")?;
        pay.static_pad("src").unwrap().link(&sink)?;
        // One media stream id for both tracks: the browser then lip-syncs them (RTCP SR).
        sink.set_property("msid", MSID);
        let trans = sink.property::<gst_webrtc::WebRTCRTPTransceiver>("transceiver");
        trans.set_property("codec-preferences", m.rtp_caps());
        trans.set_property(
            "direction",
            gst_webrtc::WebRTCRTPTransceiverDirection::Sendonly,
        );
        let ghost = gst::GhostPad::builder_with_target(&queue.static_pad("sink").unwrap())?
            .name(kind_name(m.kind))
            .build();
        bin.add_pad(&ghost)?;
    }
    Ok((bin, webrtc))
}

fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::Video => "video",
        Kind::Audio => "audio",
    }
}

/// Starts the bin and links it to the shared tees.
fn tap(stream: &Stream, bin: gst::Bin, media: &[Media]) -> Result<Viewer> {
    bin.sync_state_with_parent()
        .context("starting the viewer's elements")?;
    let mut viewer = Viewer {
        bin,
        taps: Vec::new(),
        last_heard: Arc::new(Mutex::new(Instant::now())),
        open: Arc::new(AtomicBool::new(false)),
    };
    for m in media {
        let tee = match m.kind {
            Kind::Video => &stream.video,
            Kind::Audio => &stream.audio,
        };
        let src = tee.request_pad_simple("src_%u").context("tee pad")?;
        let open = viewer.open.clone();
        src.add_probe(
            gst::PadProbeType::BUFFER | gst::PadProbeType::BUFFER_LIST,
            move |_, _| {
                if open.load(Ordering::Acquire) {
                    gst::PadProbeReturn::Remove
                } else {
                    gst::PadProbeReturn::Drop
                }
            },
        );
        viewer.taps.push((tee.clone(), src.clone()));
        let sink = viewer.bin.static_pad(kind_name(m.kind)).unwrap();
        if let Err(e) = src.link(&sink) {
            leave(stream, viewer);
            bail!("linking the viewer to the {} tee: {e}", kind_name(m.kind));
        }
    }
    Ok(viewer)
}

fn watch_connection(webrtc: &gst::Element, events: Arc<dyn Fn(Event) + Send + Sync>) {
    webrtc.connect_notify(Some("connection-state"), move |w, _| {
        use gst_webrtc::WebRTCPeerConnectionState as S;
        match w.property::<S>("connection-state") {
            S::Connected => events(Event::Connected),
            S::Failed | S::Closed => events(Event::Gone),
            _ => {}
        }
    });
}

/// RTCP from the viewer: any packet proves it is there, a BYE says it left.
fn watch_rtcp(
    webrtc: &gst::Element,
    last_heard: &Arc<Mutex<Instant>>,
    events: Arc<dyn Fn(Event) + Send + Sync>,
) {
    let Some(rtpbin) = webrtc
        .downcast_ref::<gst::Bin>()
        .and_then(|b| b.by_name("rtpbin"))
    else {
        return;
    };
    let last = last_heard.clone();
    rtpbin.connect("on-ssrc-active", false, move |_| {
        *last.lock().unwrap() = Instant::now();
        None
    });
    rtpbin.connect("on-bye-ssrc", false, move |_| {
        events(Event::Gone);
        None
    });
}

/// Offer in, answer out: set-remote-description, create-answer, set-local-description, then
/// wait for ICE gathering so the answer lists our candidates.
fn negotiate(webrtc: &gst::Element, offer: gst_sdp::SDPMessage) -> Result<String> {
    let offer = gst_webrtc::WebRTCSessionDescription::new(gst_webrtc::WebRTCSDPType::Offer, offer);
    call(webrtc, "set-remote-description", &offer)?;
    let reply = call(webrtc, "create-answer", &None::<gst::Structure>)?
        .context("create-answer gave no reply")?;
    let answer = reply
        .get::<gst_webrtc::WebRTCSessionDescription>("answer")
        .map_err(|_| anyhow!("webrtcbin could not answer the offer: {reply}"))?;
    let gathered = gathering_complete(webrtc);
    call(webrtc, "set-local-description", &answer)?;
    gathered
        .recv_timeout(STEP_TIMEOUT)
        .map_err(|_| anyhow!("ICE gathering did not complete within {STEP_TIMEOUT:?}"))?;
    let local = webrtc.property::<gst_webrtc::WebRTCSessionDescription>("local-description");
    local
        .sdp()
        .as_text()
        .context("writing the SDP answer as text")
}

/// Emits a webrtcbin action signal that takes (argument, promise) and waits for the promise.
fn call(webrtc: &gst::Element, signal: &str, arg: &dyn ToValue) -> Result<Option<gst::Structure>> {
    let (tx, rx) = mpsc::channel();
    let promise = gst::Promise::with_change_func(move |reply| {
        let _ = tx.send(reply.map(|r| r.map(|s| s.to_owned())));
    });
    webrtc.emit_by_name::<()>(signal, &[arg, &promise]);
    let reply = rx
        .recv_timeout(STEP_TIMEOUT)
        .map_err(|_| anyhow!("webrtcbin did not complete {signal} within {STEP_TIMEOUT:?}"))?
        .map_err(|e| anyhow!("{signal} failed: {e:?}"))?;
    if let Some(err) = reply
        .as_ref()
        .and_then(|s| s.get::<glib::Error>("error").ok())
    {
        bail!("{signal} failed: {err}");
    }
    Ok(reply)
}

fn gathering_complete(webrtc: &gst::Element) -> mpsc::Receiver<()> {
    let (tx, rx) = mpsc::sync_channel(1);
    webrtc.connect_notify(Some("ice-gathering-state"), move |w, _| {
        let s = w.property::<gst_webrtc::WebRTCICEGatheringState>("ice-gathering-state");
        if s == gst_webrtc::WebRTCICEGatheringState::Complete {
            let _ = tx.try_send(());
        }
    });
    rx
}
