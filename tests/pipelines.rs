//! The scripts in pipelines/, run as a user would run them, with the tiny pack and real speech:
//! MP4 render (A/V sync measured with ffprobe), RTMP to a local nginx-rtmp server (the recorded
//! FLV is checked), virtual camera / preview / OBS pipelines with stand-in sinks.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};

use common::*;
use gst::prelude::*;
use serde_json::Value;

/// The scripts load the plugin from disk: build the cdylib once for this test run.
fn plugin_dir() -> PathBuf {
    static BUILD: Once = Once::new();
    BUILD.call_once(|| {
        let st = Command::new(env!("CARGO"))
            .args(["build", "--lib", "--quiet"])
            .current_dir(root())
            .status()
            .unwrap();
        assert!(st.success(), "cargo build --lib failed");
    });
    root().join("target/debug")
}

fn script(name: &str) -> Command {
    let mut c = Command::new("bash");
    c.arg(root().join("pipelines").join(name))
        .env("DAWN_PLUGIN_DIR", plugin_dir())
        .env("DAWN_PROPS", "execution-provider=cpu")
        .env(
            "GST_REGISTRY",
            std::env::temp_dir().join(format!("gst-dawn-registry-{}.bin", std::process::id())),
        );
    c
}

fn run(mut c: Command, timeout: Duration) -> String {
    let mut child = c
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            let text = String::from_utf8_lossy(&out.stdout).to_string()
                + &String::from_utf8_lossy(&out.stderr);
            assert!(status.success(), "script failed ({status}):\n{text}");
            return text;
        }
        if t.elapsed() > timeout {
            let _ = child.kill();
            panic!("script did not finish in {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("gst-dawn-pipelines-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

fn ffprobe(path: &Path) -> Vec<Value> {
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

fn stream<'a>(streams: &'a [Value], kind: &str) -> &'a Value {
    streams
        .iter()
        .find(|s| s["codec_type"] == kind)
        .unwrap_or_else(|| panic!("no {kind} stream in {streams:?}"))
}

/// First and end (last + duration) presentation times of each stream, from the packets.
fn packet_span(path: &Path, kind: &str) -> (f64, f64) {
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
fn assert_in_sync(path: &Path) {
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

/// Writes the first `seconds` of the test speech as a 16-bit WAV.
fn speech_wav(seconds: f64) -> PathBuf {
    let s = speech();
    let n = (seconds * 16_000.0) as usize;
    let pcm: Vec<u8> = s[..n]
        .iter()
        .flat_map(|v| ((v * 32768.0).round() as i16).to_le_bytes())
        .collect();
    let mut wav = Vec::new();
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + pcm.len() as u32).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes());
    wav.extend_from_slice(&16_000u32.to_le_bytes());
    wav.extend_from_slice(&32_000u32.to_le_bytes());
    wav.extend_from_slice(&2u16.to_le_bytes());
    wav.extend_from_slice(&16u16.to_le_bytes());
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&(pcm.len() as u32).to_le_bytes());
    wav.extend_from_slice(&pcm);
    let p = tmp(&format!("speech-{seconds}.wav"));
    std::fs::write(&p, wav).unwrap();
    p
}

fn portrait() -> String {
    data("mpl_grace_hopper.jpg").display().to_string()
}

#[test]
fn render_file_to_mp4_in_sync() {
    let out = tmp("render.mp4");
    let mut c = script("render-file.sh");
    c.args([
        &portrait(),
        data("speech_orig_16k.wav").to_str().unwrap(),
        pack("tiny128").to_str().unwrap(),
        out.to_str().unwrap(),
    ]);
    run(c, Duration::from_secs(240));
    let streams = ffprobe(&out);
    let v = stream(&streams, "video");
    assert_eq!(v["codec_name"], "h264");
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (Some(128), Some(128))
    );
    assert_eq!(v["r_frame_rate"], "25/1");
    assert_eq!(v["nb_read_frames"], "270", "10.8 s of speech → 270 frames");
    assert_eq!(stream(&streams, "audio")["codec_name"], "aac");
    assert_in_sync(&out);
}

struct Nginx {
    child: std::process::Child,
    dir: PathBuf,
    port: u16,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_nginx() -> Option<Nginx> {
    let nginx = ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .find(|p| Path::new(p).exists());
    let Some(nginx) = nginx else {
        eprintln!("SKIP: nginx not installed (tools/setup.sh installs nginx + libnginx-mod-rtmp)");
        return None;
    };
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dir = tmp(&format!("nginx-{port}"));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = std::fs::read_to_string(root().join("tests/rtmp/nginx.conf.in"))
        .unwrap()
        .replace("@PORT@", &port.to_string())
        .replace("@DIR@", dir.to_str().unwrap());
    std::fs::write(dir.join("nginx.conf"), conf).unwrap();
    let child = Command::new(nginx)
        .args([
            "-p",
            dir.to_str().unwrap(),
            "-c",
            dir.join("nginx.conf").to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "nginx-rtmp did not start (see {}/error.log)",
            dir.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Some(Nginx { child, dir, port })
}

#[test]
fn rtmp_live_stream_is_recorded_by_a_real_server() {
    let Some(server) = start_nginx() else { return };
    let url = format!("rtmp://127.0.0.1:{}/live/probe", server.port);
    let mut c = script("rtmp.sh");
    // 5 s of speech played at real-time speed (a live stream).
    c.args([
        &portrait(),
        pack("tiny128").to_str().unwrap(),
        &url,
        speech_wav(5.0).to_str().unwrap(),
    ]);
    c.env("DAWN_PROPS", "execution-provider=cpu chunk-frames=10 context-frames=4 lookahead-frames=4 sampling-steps=8");
    run(c, Duration::from_secs(120));
    // nginx finalises the recording when the publisher disconnects.
    let flv = server.dir.join("probe.flv");
    let t = Instant::now();
    while !flv.exists() || std::fs::metadata(&flv).unwrap().len() == 0 {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "no recording at {}",
            flv.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    let streams = ffprobe(&flv);
    let v = stream(&streams, "video");
    assert_eq!(v["codec_name"], "h264");
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (Some(128), Some(128))
    );
    assert_eq!(v["r_frame_rate"], "25/1");
    let a = stream(&streams, "audio");
    assert_eq!(a["codec_name"], "aac");
    let frames: f64 = v["nb_read_frames"].as_str().unwrap().parse().unwrap();
    println!("RTMP recording: {frames} video frames");
    assert!(
        (frames - 125.0).abs() <= 2.0,
        "5 s at 25 fps should be 125 frames, got {frames}"
    );
    assert_in_sync(&flv);
}

#[test]
fn virtual_camera_pipeline_with_a_stand_in_sink() {
    let out = tmp("vcam.yuv");
    let mut c = script("virtual-camera.sh");
    c.args([
        &portrait(),
        pack("tiny64").to_str().unwrap(),
        "/dev/video10",
        "256",
    ]);
    // A live microphone stand-in: 3 s of test tone in real time.
    c.env(
        "DAWN_AUDIO_SRC",
        "audiotestsrc is-live=true num-buffers=150 samplesperbuffer=320 wave=ticks",
    );
    c.env(
        "DAWN_VIDEO_SINK",
        format!("filesink location={}", out.display()),
    );
    c.env("DAWN_PROPS", "execution-provider=cpu chunk-frames=5 context-frames=4 lookahead-frames=2 sampling-steps=4 latency=500");
    run(c, Duration::from_secs(60));
    let size = std::fs::metadata(&out).unwrap().len();
    let frame = 256 * 256 * 2; // YUY2
    assert_eq!(size % frame, 0);
    let frames = size / frame;
    assert!(frames >= 70, "a 3 s live stream gave only {frames} frames");
}

#[test]
fn preview_pipeline_with_stand_in_sinks() {
    let mut c = script("preview.sh");
    c.args([
        &portrait(),
        pack("tiny64").to_str().unwrap(),
        speech_wav(1.0).to_str().unwrap(),
    ]);
    c.env("DAWN_VIDEO_SINK", "fakesink sync=false");
    c.env("DAWN_AUDIO_SINK", "fakesink sync=false");
    let out = run(c, Duration::from_secs(60));
    assert!(out.contains("Got EOS"), "{out}");
}

#[test]
fn obs_pipeline_parses_and_runs() {
    let mut c = script("obs-source.sh");
    c.args([&portrait(), pack("tiny64").to_str().unwrap()]);
    let text = run(c, Duration::from_secs(30));
    let line = text
        .lines()
        .find(|l| l.contains("dawnavatar"))
        .expect("a pipeline line");
    assert!(
        line.trim_end().ends_with("video."),
        "OBS pipelines end in the `video` sink: {line}"
    );
    // obs-gstreamer provides an appsink named `video`; stand in for it and for the microphone.
    init();
    let desc = line
        .replace(
            "autoaudiosrc",
            "audiotestsrc num-buffers=20 samplesperbuffer=1600",
        )
        .replace("dawnavatar ", "dawnavatar execution-provider=cpu ")
        + " fakesink name=video";
    let pipeline = gst::parse::launch(&desc)
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
    run_pipeline(&pipeline, Duration::from_secs(60)).unwrap();
}

#[test]
fn scripts_check_their_prerequisites() {
    let mut c = script("rtmp.sh");
    c.args([&portrait(), "/nonexistent/pack", "rtmp://127.0.0.1/live/x"]);
    let out = c.output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/nonexistent/pack") && err.contains("manifest.json"),
        "{err}"
    );
    let mut c = script("rtmp.sh");
    c.args([
        &portrait(),
        pack("tiny64").to_str().unwrap(),
        "http://not-rtmp",
    ]);
    let out = c.output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("not an rtmp:// URL"));
    let mut c = script("virtual-camera.sh");
    c.args([
        &portrait(),
        pack("tiny64").to_str().unwrap(),
        "/dev/video99",
    ]);
    let out = c.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("modprobe v4l2loopback"),
        "{err}"
    );
}
