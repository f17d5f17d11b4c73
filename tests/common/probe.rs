//! ffprobe helpers: the streams of a file and the time span of each stream's packets, which is
//! what a user checks to see that audio and video of a recording are in sync.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

pub fn ffprobe(path: &Path) -> Vec<Value> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-print_format",
            "json",
            "-show_streams",
            "-count_frames",
        ])
        .arg(path)
        .output()
        .expect("ffprobe (tools/setup.sh installs ffmpeg)");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["streams"].as_array().cloned().unwrap_or_default()
}

pub fn stream<'a>(streams: &'a [Value], kind: &str) -> &'a Value {
    streams
        .iter()
        .find(|s| s["codec_type"] == kind)
        .unwrap_or_else(|| panic!("no {kind} stream in {streams:?}"))
}

/// First and end (last + duration) presentation times of each stream, from the packets.
pub fn packet_span(path: &Path, kind: &str) -> (f64, f64) {
    let sel = if kind == "audio" { "a:0" } else { "v:0" };
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            sel,
            "-print_format",
            "json",
            "-show_packets",
        ])
        .arg(path)
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let pkts = v["packets"].as_array().unwrap();
    assert!(!pkts.is_empty(), "no {kind} packets");
    let t = |p: &Value, k: &str| {
        p[k].as_str()
            .and_then(|s| s.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let first = pkts
        .iter()
        .map(|p| t(p, "pts_time"))
        .fold(f64::INFINITY, f64::min);
    let end = pkts
        .iter()
        .map(|p| t(p, "pts_time") + t(p, "duration_time"))
        .fold(f64::NEG_INFINITY, f64::max);
    (first, end)
}

/// Audio and video start together (|offset| ≤ 40 ms) and last as long (within one video
/// frame, plus one AAC frame of 1024 samples for the audio's own granularity).
pub fn assert_in_sync(path: &Path) {
    let (a0, a1) = packet_span(path, "audio");
    let (v0, v1) = packet_span(path, "video");
    let offset = a0 - v0;
    let (da, dv) = (a1 - a0, v1 - v0);
    println!(
        "{}: A/V start offset {:.3} s, durations audio {da:.3} s video {dv:.3} s",
        path.display(),
        offset
    );
    assert!(offset.abs() <= 0.040, "audio/video start offset {offset} s");
    assert!(
        (da - dv).abs() <= 0.040 + 0.064,
        "durations differ: audio {da} video {dv}"
    );
}
