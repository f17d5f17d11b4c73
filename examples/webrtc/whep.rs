//! The HTTP side, WHEP style (RFC 9725's playback counterpart): `POST /whep` with the viewer's
//! SDP offer answers `201 Created` with our SDP answer and the viewer's resource in
//! `Location`; `DELETE` on that resource ends the session. `GET /` serves the viewer page,
//! `GET /status` the stream's figures as JSON.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io::{Cursor, Read};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};

use gst::prelude::*;
use tiny_http::{Header, Method, Request, Response};

use crate::offer;
use crate::stream::Stream;
use crate::viewer::{self, Event, Viewer};

const PAGE: &str = include_str!("index.html");
/// An SDP offer is a few kilobytes.
const MAX_BODY: u64 = 64 * 1024;

type Reply = Response<Cursor<Vec<u8>>>;

pub struct App {
    pub stream: Stream,
    pub viewers: Mutex<HashMap<String, Viewer>>,
    pub stun: Option<String>,
    pub max_viewers: usize,
    /// Viewer events, handled by the main loop: (viewer id, event).
    pub events: Mutex<Sender<(String, Event)>>,
}

impl App {
    /// Ends a viewer's session; false when there is no such viewer.
    pub fn remove(&self, id: &str) -> bool {
        let v = self.viewers.lock().unwrap().remove(id);
        match v {
            Some(v) => {
                viewer::leave(&self.stream, v);
                eprintln!("webrtc: viewer {id} left");
                true
            }
            None => false,
        }
    }
}

/// Serves requests until the listener closes, one thread per request (a negotiation waits on
/// webrtcbin; other viewers need not wait for it).
pub fn serve(http: tiny_http::Server, app: Arc<App>) {
    for req in http.incoming_requests() {
        let app = app.clone();
        std::thread::spawn(move || {
            let mut req = req;
            let reply = route(&app, &mut req);
            let _ = req.respond(reply);
        });
    }
}

fn route(app: &App, req: &mut Request) -> Reply {
    let path = req.url().split('?').next().unwrap_or("").to_string();
    match (req.method(), path.as_str()) {
        (Method::Get, "/") => text(200, "text/html; charset=utf-8", PAGE),
        // Browsers ask for it; an empty answer keeps their console quiet.
        (Method::Get, "/favicon.ico") => text(204, "image/x-icon", ""),
        (Method::Get, "/status") => text(200, "application/json", &status(app)),
        (Method::Post, "/whep") => post(app, req),
        (Method::Options, "/whep") => {
            text(204, "text/plain", "").with_header(header("Accept-Post", "application/sdp"))
        }
        (Method::Delete, p) if p.starts_with("/whep/") => {
            if app.remove(&p["/whep/".len()..]) {
                text(200, "text/plain", "")
            } else {
                text(404, "text/plain", "no such viewer session\n")
            }
        }
        (_, "/whep") => text(405, "text/plain", "POST an SDP offer here\n")
            .with_header(header("Allow", "POST, OPTIONS")),
        _ => text(404, "text/plain", "not found\n"),
    }
}

fn post(app: &App, req: &mut Request) -> Reply {
    let is_sdp = req
        .headers()
        .iter()
        .any(|h| h.field.equiv("Content-Type") && h.value.as_str().starts_with("application/sdp"));
    if !is_sdp {
        return text(
            415,
            "text/plain",
            "the offer must be sent as application/sdp\n",
        );
    }
    if app.viewers.lock().unwrap().len() >= app.max_viewers {
        return text(503, "text/plain", "too many viewers (see --max-viewers)\n");
    }
    let mut body = Vec::new();
    if req
        .as_reader()
        .take(MAX_BODY)
        .read_to_end(&mut body)
        .is_err()
    {
        return text(400, "text/plain", "could not read the request body\n");
    }
    let offer = match offer::parse(&body) {
        Ok(o) => o,
        Err(e) => return text(400, "text/plain", &format!("{e:#}\n")),
    };
    let id = new_id();
    let events = app.events.lock().unwrap().clone();
    let tag = id.clone();
    let notify = move |e| {
        let _ = events.send((tag.clone(), e));
    };
    match viewer::join(&app.stream, offer, app.stun.as_deref(), notify) {
        Ok((v, answer)) => {
            app.viewers.lock().unwrap().insert(id.clone(), v);
            eprintln!("webrtc: viewer {id} joined");
            text(201, "application/sdp", &answer)
                .with_header(header("Location", &format!("/whep/{id}")))
        }
        Err(e) => {
            eprintln!("webrtc: a viewer could not join: {e:#}");
            text(500, "text/plain", &format!("{e:#}\n"))
        }
    }
}

fn status(app: &App) -> String {
    let a = &app.stream.avatar;
    serde_json::json!({
        "viewers": app.viewers.lock().unwrap().len(),
        "frames_generated": a.property::<u64>("frames-generated"),
        "frames_repeated": a.property::<u64>("frames-repeated"),
        "frames_dropped": a.property::<u64>("frames-dropped"),
        "latency_ms": app.stream.latency().map(|l| l.mseconds()),
    })
    .to_string()
}

/// An unguessable session id, so one viewer cannot end another's session.
fn new_id() -> String {
    format!("{:016x}", RandomState::new().build_hasher().finish())
}

fn text(code: u16, content_type: &str, body: &str) -> Reply {
    Response::from_string(body)
        .with_status_code(code)
        .with_header(header("Content-Type", content_type))
}

fn header(name: &str, value: &str) -> Header {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("ASCII header")
}
