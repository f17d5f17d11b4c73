//! The browser viewer, end to end: `pipelines/webrtc.sh` serves the tiny pack's avatar from a
//! speech file, and Debian's Chromium, headless and driven by playwright-core
//! (`tests/browser/viewer_test.mjs`), opens the page over loopback. Within 60 s the first
//! viewer must decode >= 50 frames at the pack's 128×128 with audio packets arriving, then a
//! second viewer joins the running stream while the first keeps playing, and both leave
//! (WHEP DELETE). Needs `tools/setup.sh` (chromium, gstreamer1.0-nice, npm packages).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{data, pack, root};

/// Kills the process when the test ends, passes or fails.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn chromium() -> PathBuf {
    let path = PathBuf::from(std::env::var("CHROMIUM").unwrap_or("/usr/bin/chromium".into()));
    assert!(
        path.exists(),
        "{} not found: tools/setup.sh installs Debian's chromium (or set CHROMIUM)",
        path.display()
    );
    path
}

fn check_node() {
    let ok = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "node not found: install Node.js >= 18 (tools/setup.sh expects it)"
    );
    let pw = root().join("tests/browser/node_modules/playwright-core");
    assert!(
        pw.exists(),
        "{} missing: run tools/setup.sh (npm ci --prefix tests/browser)",
        pw.display()
    );
}

/// The server binary, built like the scripts' users build it (debug here: tests build debug).
fn server_binary() -> PathBuf {
    let st = Command::new(env!("CARGO"))
        .args(["build", "--example", "webrtc", "--quiet"])
        .current_dir(root())
        .status()
        .unwrap();
    assert!(st.success(), "cargo build --example webrtc failed");
    root().join("target/debug/examples/webrtc")
}

/// Lines of a child's stream, read on a thread so the test can time out on them.
fn lines(stream: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn start_server(bin: &Path) -> (Guard, String, mpsc::Receiver<String>) {
    let mut child = Command::new("bash")
        .arg(root().join("pipelines/webrtc.sh"))
        .args([
            data("mpl_grace_hopper.jpg").to_str().unwrap(),
            data("speech_orig_16k.wav").to_str().unwrap(),
            pack("tiny128").to_str().unwrap(),
            "0",
        ])
        .env("DAWN_WEBRTC_BIN", bin)
        .env("DAWN_PROPS", "execution-provider=cpu output=face")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = lines(child.stdout.take().unwrap());
    let err = lines(child.stderr.take().unwrap());
    let guard = Guard(child);
    let t = Instant::now();
    loop {
        match out.recv_timeout(Duration::from_millis(200)) {
            Ok(line) if line.contains("serving http://") => {
                let url = line[line.find("http://").unwrap()..].trim().to_string();
                return (guard, url, err);
            }
            Ok(_) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let log: Vec<String> = err.try_iter().collect();
                panic!("webrtc.sh exited before serving:\n{}", log.join("\n"));
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let log: Vec<String> = err.try_iter().collect();
                assert!(
                    t.elapsed() < Duration::from_secs(60),
                    "watchdog: webrtc.sh did not start serving within 60 s:\n{}",
                    log.join("\n")
                );
            }
        }
    }
}

/// One HTTP/1.1 request over loopback; the status code and the body of the answer.
fn http(url: &str, method: &str, path: &str, content_type: &str, body: &str) -> (u16, String) {
    let addr = url.trim_start_matches("http://").trim_end_matches('/');
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {content_type}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer)
        .expect("the server answers within 10 s");
    let code = answer
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (code, body)
}

/// Requests a viewer gets wrong are answered with the reason, not a hang or a crash.
fn check_bad_requests(url: &str) {
    let (code, body) = http(url, "POST", "/whep", "text/plain", "hello");
    assert_eq!(code, 415, "{body}");
    let (code, body) = http(url, "POST", "/whep", "application/sdp", "not sdp");
    assert_eq!(code, 400, "{body}");
    let no_vp8 = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 98\r\na=rtpmap:98 VP9/90000\r\n";
    let (code, body) = http(url, "POST", "/whep", "application/sdp", no_vp8);
    assert!(code == 400 && body.contains("no VP8"), "{code} {body}");
    let (code, _) = http(url, "DELETE", "/whep/0123456789abcdef", "text/plain", "");
    assert_eq!(code, 404);
    let (code, body) = http(url, "GET", "/status", "text/plain", "");
    assert!(
        code == 200 && body.contains("\"viewers\":0"),
        "{code} {body}"
    );
}

#[test]
fn two_browser_viewers_watch_the_running_avatar_with_sound() {
    let browser = chromium();
    check_node();
    let bin = server_binary();
    let (_server, url, server_log) = start_server(&bin);
    let mut node = Command::new("node")
        .arg(root().join("tests/browser/viewer_test.mjs"))
        .args([&url, "128", "128"])
        .env("CHROMIUM", &browser)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = lines(node.stdout.take().unwrap());
    let err = lines(node.stderr.take().unwrap());
    let node = Guard(node);
    // The script has its own 90 s watchdog naming the stage; this one catches node itself.
    let t = Instant::now();
    let mut text = Vec::new();
    loop {
        match out.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => {
                println!("{line}");
                text.push(line);
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if t.elapsed() > Duration::from_secs(150) {
                    panic!(
                        "watchdog: the browser test (node) hung for 150 s; last output: {:?}",
                        text.last()
                    );
                }
            }
        }
    }
    drop(node);
    let server: Vec<String> = server_log.try_iter().collect();
    let node_err: Vec<String> = err.try_iter().collect();
    let verdict = text.last().cloned().unwrap_or_default();
    assert!(
        verdict == "PASS",
        "browser test: {verdict}\n-- node stderr:\n{}\n-- server log:\n{}",
        node_err.join("\n"),
        server.join("\n")
    );
    println!("server log:\n{}", server.join("\n"));
    check_bad_requests(&url);
}
