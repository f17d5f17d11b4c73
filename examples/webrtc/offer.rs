//! A viewer's SDP offer: which media it asks for, in which order, and the payload type it gave
//! each codec we send (VP8 video, Opus audio). The per-viewer payloaders use those numbers.

use anyhow::{Context, Result, bail};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Video,
    Audio,
}

/// One m-line we will answer with a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Media {
    pub kind: Kind,
    pub payload: u8,
}

impl Media {
    /// Caps for the payloader's output and the transceiver's codec preference.
    pub fn rtp_caps(&self) -> gst::Caps {
        match self.kind {
            Kind::Video => gst::Caps::builder("application/x-rtp")
                .field("media", "video")
                .field("encoding-name", "VP8")
                .field("clock-rate", 90_000i32)
                .field("payload", self.payload as i32)
                .build(),
            Kind::Audio => gst::Caps::builder("application/x-rtp")
                .field("media", "audio")
                .field("encoding-name", "OPUS")
                .field("clock-rate", 48_000i32)
                .field("encoding-params", "2")
                .field("payload", self.payload as i32)
                .build(),
        }
    }
}

#[derive(Debug)]
pub struct Offer {
    pub sdp: gst_sdp::SDPMessage,
    /// The m-lines we serve, in the offer's order.
    pub media: Vec<Media>,
}

/// Parses the body of a WHEP POST. A usable offer has a VP8 video m-line; Opus audio is
/// served when offered.
pub fn parse(body: &[u8]) -> Result<Offer> {
    let sdp = gst_sdp::SDPMessage::parse_buffer(body)
        .ok()
        .filter(|m| m.medias_len() > 0)
        .context("the body is not an SDP offer with media sections")?;
    let mut media = Vec::new();
    for m in sdp.medias() {
        let (kind, codec) = match m.media() {
            Some("video") => (Kind::Video, "vp8/90000"),
            Some("audio") => (Kind::Audio, "opus/48000/2"),
            _ => continue,
        };
        if m.port() == 0 || media.iter().any(|x: &Media| x.kind == kind) {
            continue;
        }
        if let Some(payload) = payload_for(m, codec) {
            media.push(Media { kind, payload });
        }
    }
    if !media.iter().any(|m| m.kind == Kind::Video) {
        bail!("the offer has no VP8 video m-line (this server sends VP8 video and Opus audio)");
    }
    Ok(Offer { sdp, media })
}

/// The payload type of `codec` ("name/rate[/channels]", case-insensitive) in an m-line's
/// rtpmap attributes ("96 VP8/90000").
fn payload_for(m: &gst_sdp::SDPMediaRef, codec: &str) -> Option<u8> {
    m.attributes()
        .filter(|a| a.key() == "rtpmap")
        .filter_map(|a| a.value())
        .find_map(|v| {
            let (pt, name) = v.split_once(' ')?;
            name.trim()
                .eq_ignore_ascii_case(codec)
                .then(|| pt.parse().ok())
                .flatten()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 111 0\r\nc=IN IP4 0.0.0.0\r\na=rtpmap:111 opus/48000/2\r\n\
        a=rtpmap:0 PCMU/8000\r\na=recvonly\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 96 102\r\nc=IN IP4 0.0.0.0\r\na=rtpmap:96 VP8/90000\r\n\
        a=rtpmap:102 H264/90000\r\na=recvonly\r\n";

    #[test]
    fn takes_the_offered_payload_types_in_offer_order() {
        gst::init().unwrap();
        let o = parse(OFFER.as_bytes()).unwrap();
        assert_eq!(
            o.media,
            vec![
                Media {
                    kind: Kind::Audio,
                    payload: 111
                },
                Media {
                    kind: Kind::Video,
                    payload: 96
                }
            ]
        );
    }

    #[test]
    fn refuses_an_offer_without_vp8() {
        gst::init().unwrap();
        let e = parse(OFFER.replace("VP8", "VP9").as_bytes()).unwrap_err();
        assert!(e.to_string().contains("no VP8 video"), "{e}");
        assert!(parse(b"hello").is_err());
    }
}
