//! The scripts in pipelines/, run as a user would run them, with the tiny pack and real speech:
//! MP4 render (A/V sync measured with ffprobe), RTMP to a local nginx-rtmp server (the recorded
//! FLV is checked), virtual camera / preview / OBS pipelines with stand-in sinks.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};

use common::probe::*;
use common::*;
use gst::prelude::*;

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

/// Writes interleaved 16-bit PCM as a WAV file.
fn write_wav(name: &str, pcm: &[i16], rate: u32, channels: u16) -> PathBuf {
    let data: Vec<u8> = pcm.iter().flat_map(|v| v.to_le_bytes()).collect();
    let mut wav = Vec::new();
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes());
    wav.extend_from_slice(&channels.to_le_bytes());
    wav.extend_from_slice(&rate.to_le_bytes());
    wav.extend_from_slice(&(rate * 2 * channels as u32).to_le_bytes());
    wav.extend_from_slice(&(2 * channels).to_le_bytes());
    wav.extend_from_slice(&16u16.to_le_bytes());
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&(data.len() as u32).to_le_bytes());
    wav.extend_from_slice(&data);
    let p = tmp(name);
    std::fs::write(&p, wav).unwrap();
    p
}

fn to_i16(v: f32) -> i16 {
    (v * 32768.0).round().clamp(-32768.0, 32767.0) as i16
}

/// Writes the first `seconds` of the test speech as a 16-bit WAV.
fn speech_wav(seconds: f64) -> PathBuf {
    let s = speech();
    let n = (seconds * 16_000.0) as usize;
    let pcm: Vec<i16> = s[..n].iter().map(|&v| to_i16(v)).collect();
    write_wav(&format!("speech-{seconds}.wav"), &pcm, 16_000, 1)
}

/// The frequency of the tone in the right channel of [`stereo_48k_wav`]: above the 8 kHz a
/// 16 kHz conversion keeps, so it survives only if the audio skips that conversion.
const TONE_HZ: f64 = 10_000.0;

/// `seconds` of 48 kHz stereo: speech on the left (the 48 kHz test recording, looped), a
/// 10 kHz tone on the right.
fn stereo_48k_wav(seconds: f64) -> PathBuf {
    let (speech, rate) = read_wav(&data("front_center_48k.wav"));
    assert_eq!(rate, 48_000);
    let n = (seconds * 48_000.0) as usize;
    let pcm: Vec<i16> = (0..n)
        .flat_map(|i| {
            let tone = 0.25 * (2.0 * std::f64::consts::PI * TONE_HZ * i as f64 / 48_000.0).sin();
            [to_i16(speech[i % speech.len()]), to_i16(tone as f32)]
        })
        .collect();
    write_wav(&format!("stereo48k-{seconds}.wav"), &pcm, 48_000, 2)
}

/// The audio of a recording decoded by ffmpeg to 48 kHz stereo f32: (left, right).
fn decoded_stereo(path: &Path) -> (Vec<f32>, Vec<f32>) {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-f", "f32le", "-ac", "2", "-ar", "48000", "-"])
        .output()
        .expect("ffmpeg (tools/setup.sh installs it)");
    assert!(
        out.status.success(),
        "ffmpeg could not decode {}",
        path.display()
    );
    let s: Vec<f32> = out
        .stdout
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    (
        s.iter().step_by(2).copied().collect(),
        s.iter().skip(1).step_by(2).copied().collect(),
    )
}

/// Share of a signal's energy at `hz` (Goertzel over the whole signal, 48 kHz).
fn energy_share_at(x: &[f32], hz: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * hz / 48_000.0;
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &v in x {
        let s0 = v as f64 + 2.0 * w.cos() * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let power = s1 * s1 + s2 * s2 - 2.0 * w.cos() * s1 * s2;
    let total: f64 = x.iter().map(|&v| (v as f64).powi(2)).sum();
    // A pure tone of energy E gives a Goertzel power of E * n / 2.
    2.0 * power / (x.len() as f64 * total.max(1e-12))
}

fn portrait() -> String {
    data("mpl_grace_hopper.jpg").display().to_string()
}

/// The video stream of a tiny128 render: H.264, 128x128, 25 fps.
fn h264_128_at_25fps(streams: &[serde_json::Value]) -> &serde_json::Value {
    let v = stream(streams, "video");
    assert_eq!(v["codec_name"], "h264");
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (Some(128), Some(128))
    );
    assert_eq!(v["r_frame_rate"], "25/1");
    v
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
    let v = h264_128_at_25fps(&streams);
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

/// Starts a private nginx-rtmp instance on a free loopback port (the system's nginx service,
/// if any, is left alone).
fn start_nginx() -> Nginx {
    let nginx = ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("nginx not installed: run tools/setup.sh (installs nginx + libnginx-mod-rtmp)");
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
    Nginx { child, dir, port }
}

#[test]
fn rtmp_live_stream_is_recorded_by_a_real_server() {
    let server = start_nginx();
    let url = format!("rtmp://127.0.0.1:{}/live/probe", server.port);
    let mut c = script("rtmp.sh");
    // 5 s of 48 kHz stereo played at real-time speed (a live stream), the script's defaults
    // otherwise (the whole portrait at 1280x720).
    c.args([
        &portrait(),
        pack("tiny128").to_str().unwrap(),
        &url,
        stereo_48k_wav(5.0).to_str().unwrap(),
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
        (Some(1280), Some(720)),
        "RTMP carries the streaming size"
    );
    let sar = v["sample_aspect_ratio"].as_str().unwrap_or("1:1");
    assert!(sar == "1:1" || sar == "0:1", "square pixels, got SAR {sar}");
    assert_eq!(v["r_frame_rate"], "25/1");
    let a = stream(&streams, "audio");
    assert_eq!(a["codec_name"], "aac");
    assert_eq!(a["sample_rate"], "48000");
    assert_eq!(a["channels"], 2);
    let frames: f64 = v["nb_read_frames"].as_str().unwrap().parse().unwrap();
    println!("RTMP recording: {frames} video frames");
    assert!(
        (frames - 125.0).abs() <= 2.0,
        "5 s at 25 fps should be 125 frames, got {frames}"
    );
    assert_in_sync(&flv);
    // The source's own sound, not the avatar's 16 kHz mono: the right channel's 10 kHz tone
    // is there, the left channel's speech is not.
    let (left, right) = decoded_stereo(&flv);
    let (l_tone, r_tone) = (
        energy_share_at(&left, TONE_HZ),
        energy_share_at(&right, TONE_HZ),
    );
    println!("10 kHz energy share: left {l_tone:.3}, right {r_tone:.3}");
    assert!(
        r_tone > 0.5,
        "the right channel lost its 10 kHz tone ({r_tone:.3})"
    );
    assert!(
        l_tone < 0.05,
        "the channels were mixed ({l_tone:.3} of the left is the tone)"
    );
}

#[test]
fn virtual_camera_pipeline_with_a_stand_in_sink() {
    let out = tmp("vcam.yuv");
    let mut c = script("virtual-camera.sh");
    c.args([
        &portrait(),
        pack("tiny64").to_str().unwrap(),
        "/dev/video10",
        "320x180",
    ]);
    c.env("DAWN_AUDIO_SINK", "fakesink sync=true");
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
    let text = run(c, Duration::from_secs(60));
    assert!(
        text.contains("lags the microphone by about 1300 ms"),
        "the script tells how much to delay the microphone ((5 + 2 + 13) x 40 + 500 ms):\n{text}"
    );
    let size = std::fs::metadata(&out).unwrap().len();
    let frame = 320 * 180 * 2; // YUY2
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
    assert!(
        text.contains("lags the microphone by about 2480 ms"),
        "the script tells how much to delay the microphone (live defaults):\n{text}"
    );
    let line = text
        .lines()
        .find(|l| l.contains("dawnavatar"))
        .expect("a pipeline line");
    assert!(
        line.contains(" video. ") && line.trim_end().ends_with("audio."),
        "OBS pipelines feed the `video` and `audio` sinks: {line}"
    );
    assert!(
        line.contains("output=portrait output-width=1280 output-height=720"),
        "OBS gets the streaming size by default: {line}"
    );
    // obs-gstreamer provides appsinks named `video` and `audio`; stand in for them and for the
    // microphone.
    init();
    let desc = line
        .replace(
            "autoaudiosrc",
            "audiotestsrc num-buffers=20 samplesperbuffer=1600",
        )
        .replace("dawnavatar ", "dawnavatar execution-provider=cpu ")
        + " fakesink name=video fakesink name=audio";
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

#[test]
fn say_renders_text_to_mp4_in_sync() {
    let out = tmp("say.mp4");
    let mut c = script("say.sh");
    c.args([
        "Hello. I am a talking head, made from a single photograph.",
        &portrait(),
        pack("tiny128").to_str().unwrap(),
        out.to_str().unwrap(),
    ]);
    run(c, Duration::from_secs(240));
    let streams = ffprobe(&out);
    let v = h264_128_at_25fps(&streams);
    let a = stream(&streams, "audio");
    assert_eq!(a["codec_name"], "aac");
    assert_eq!(
        a["sample_rate"], "22050",
        "the MP4 keeps espeak-ng's 22.05 kHz, not the avatar's 16 kHz"
    );
    let frames: u64 = v["nb_read_frames"].as_str().unwrap().parse().unwrap();
    assert!(
        frames >= 50,
        "a sentence is seconds long, got {frames} frames"
    );
    assert_in_sync(&out);
}

/// Seconds of speech espeak-ng makes of `text` (default voice).
fn espeak_seconds(text: &str) -> f64 {
    let wav = tmp(&format!("espeak-{}.wav", text.len()));
    let st = Command::new("espeak-ng")
        .arg("-w")
        .arg(&wav)
        .arg(text)
        .status()
        .expect("espeak-ng (tools/setup.sh installs it)");
    assert!(st.success());
    let (s, rate) = read_wav(&wav);
    s.len() as f64 / rate as f64
}

/// The longest run of near silence (RMS < 1e-3 over 20 ms windows) strictly inside the
/// speech, in seconds: the idle time between two utterances.
fn longest_inner_silence(x: &[f32]) -> f64 {
    let win = 960;
    let loud: Vec<bool> = x
        .chunks(win)
        .map(|c| (c.iter().map(|v| v * v).sum::<f32>() / c.len() as f32).sqrt() >= 1e-3)
        .collect();
    let (first, last) = (
        loud.iter().position(|&l| l).unwrap_or(0),
        loud.iter().rposition(|&l| l).unwrap_or(0),
    );
    let (mut best, mut run) = (0, 0);
    for &l in &loud[first..=last] {
        run = if l { 0 } else { run + 1 };
        best = best.max(run);
    }
    best as f64 * 0.02
}

#[test]
fn tts_live_feeds_speech_chunks_into_a_running_pipeline() {
    let st = Command::new(env!("CARGO"))
        .args(["build", "--example", "tts_live", "--quiet"])
        .current_dir(root())
        .status()
        .unwrap();
    assert!(st.success(), "cargo build --example tts_live failed");
    let out = tmp("tts-live.mp4");
    let lines = [
        "Hello, I am a talking head.",
        "And this is what I say a little later.",
    ];
    let mut child = Command::new(root().join("target/debug/examples/tts_live"))
        .args(["--image", &portrait(), "--model"])
        .arg(pack("tiny128"))
        .arg("--out")
        .arg(&out)
        .args(["--set", "execution-provider=cpu"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // An application's utterances: one now, one 6 s later, then the end of the input.
    let mut stdin = child.stdin.take().unwrap();
    use std::io::Write;
    writeln!(stdin, "{}", lines[0]).unwrap();
    std::thread::sleep(Duration::from_secs(6));
    writeln!(stdin, "{}", lines[1]).unwrap();
    drop(stdin);
    let t = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t.elapsed() > Duration::from_secs(90) {
            let _ = child.kill();
            panic!("watchdog: tts_live did not end within 90 s of its input's end");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let o = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "tts_live failed:\n{log}");
    println!("{log}");
    // "generated N repeated M": a live pipeline whose latency is not configured (a sink that
    // does not sync) makes every frame late, and the element repeats instead of animating.
    let counts: Vec<u64> = log
        .lines()
        .find(|l| l.contains("generated"))
        .expect("tts_live prints its frame counts")
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    assert!(
        counts.len() == 2 && counts[0] > counts[1],
        "most frames should be generated, not repeated: {counts:?}"
    );
    let streams = ffprobe(&out);
    assert_eq!(stream(&streams, "video")["r_frame_rate"], "25/1");
    assert_eq!(stream(&streams, "audio")["sample_rate"], "22050");
    assert_in_sync(&out);
    let (sound, _) = decoded_stereo(&out);
    let total = sound.len() as f64 / 48_000.0;
    let spoken = espeak_seconds(lines[0]) + espeak_seconds(lines[1]);
    let idle = longest_inner_silence(&sound);
    println!("recording {total:.2} s: {spoken:.2} s of speech, {idle:.2} s idle between");
    assert!(
        idle >= 1.0,
        "the avatar should idle on silence between the utterances (longest gap {idle:.2} s)"
    );
    assert!(
        total >= spoken + 1.0 && total <= spoken + 8.0,
        "the recording ({total:.2} s) holds both utterances ({spoken:.2} s) and the gap"
    );
}
