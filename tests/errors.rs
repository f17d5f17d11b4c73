//! Bad input gives an element error that names the cause and the fix, and the pipeline shuts
//! down cleanly: missing or corrupt portrait, missing or mismatched model pack, wrong caps,
//! missing ONNX Runtime library.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use gst::prelude::*;

/// filesrc(speech) ! wavparse ! dawnavatar(props) ! fakesink, run to the end; returns the error.
fn run_with(props: &[(&str, &str)]) -> Result<(), String> {
    init();
    let pipeline = gst::Pipeline::new();
    let src = gst::ElementFactory::make("filesrc")
        .property("location", data("speech_orig_16k.wav").to_str().unwrap())
        .build()
        .unwrap();
    let parse = gst::ElementFactory::make("wavparse").build().unwrap();
    let e = gst::ElementFactory::make("dawnavatar")
        .property(
            "execution-provider",
            gstdawn::element::ExecutionProvider::Cpu,
        )
        .property("chunk-frames", 8u32)
        .property("sampling-steps", 2u32)
        .build()
        .unwrap();
    for (k, v) in props {
        e.set_property_from_str(k, v);
    }
    let sink = gst::ElementFactory::make("fakesink").build().unwrap();
    pipeline.add_many([&src, &parse, &e, &sink]).unwrap();
    gst::Element::link_many([&src, &parse, &e, &sink]).unwrap();
    let res = run_pipeline(&pipeline, Duration::from_secs(60));
    // Clean shutdown: everything back to NULL, nothing left running.
    assert_eq!(pipeline.current_state(), gst::State::Null);
    res
}

fn tmpdir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("gst-dawn-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn copy_pack(to: &Path) {
    for f in std::fs::read_dir(pack("tiny64")).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), to.join(f.file_name())).unwrap();
    }
}

fn pack64() -> String {
    pack("tiny64").display().to_string()
}

fn portrait() -> String {
    data("skimage_astronaut_128.png").display().to_string()
}

#[test]
fn works_with_valid_input() {
    run_with(&[("model-path", &pack64()), ("image", &portrait())]).unwrap();
}

#[test]
fn missing_properties_are_named() {
    let err = run_with(&[("image", &portrait())]).unwrap_err();
    assert!(err.contains("model-path"), "{err}");
    let err = run_with(&[("model-path", &pack64())]).unwrap_err();
    assert!(err.contains("image"), "{err}");
}

#[test]
fn missing_pack_directory() {
    let err = run_with(&[("model-path", "/nonexistent/pack"), ("image", &portrait())]).unwrap_err();
    assert!(
        err.contains("/nonexistent/pack") && err.contains("does not exist"),
        "{err}"
    );
    assert!(
        err.contains("fix:"),
        "the message must say how to fix it: {err}"
    );
}

#[test]
fn pack_with_wrong_graphs_lists_every_difference() {
    let dir = tmpdir("badgraph");
    copy_pack(&dir);
    // A decoder where the denoiser should be: every input and output differs.
    std::fs::copy(dir.join("decoder.onnx"), dir.join("denoiser.onnx")).unwrap();
    let err = run_with(&[
        ("model-path", dir.to_str().unwrap()),
        ("image", &portrait()),
    ])
    .unwrap_err();
    assert!(err.contains("does not match contract"), "{err}");
    assert!(err.contains("denoiser.onnx: missing input `x_t`"), "{err}");
    assert!(err.contains("denoiser.onnx: missing output `eps`"), "{err}");
    assert!(err.contains("unexpected input `flow`"), "{err}");
}

#[test]
fn pack_with_wrong_manifest() {
    let dir = tmpdir("badmanifest");
    copy_pack(&dir);
    let m = std::fs::read_to_string(dir.join("manifest.json")).unwrap();
    let m = m.replacen("\"version\": 1", "\"version\": 7", 1).replacen(
        "\"latent_size\": 16",
        "\"latent_size\": 32",
        1,
    );
    std::fs::write(dir.join("manifest.json"), m).unwrap();
    let err = run_with(&[
        ("model-path", dir.to_str().unwrap()),
        ("image", &portrait()),
    ])
    .unwrap_err();
    assert!(err.contains("version is 7"), "{err}");
    assert!(
        err.contains("latent_size is 32, expected resolution/4 = 16"),
        "{err}"
    );
    // Not JSON at all.
    std::fs::write(dir.join("manifest.json"), "{ nope").unwrap();
    let err = run_with(&[
        ("model-path", dir.to_str().unwrap()),
        ("image", &portrait()),
    ])
    .unwrap_err();
    assert!(
        err.contains("manifest.json") && err.contains("not a valid"),
        "{err}"
    );
    // A graph file missing.
    copy_pack(&dir);
    std::fs::remove_file(dir.join("pbnet_blink.onnx")).unwrap();
    let err = run_with(&[
        ("model-path", dir.to_str().unwrap()),
        ("image", &portrait()),
    ])
    .unwrap_err();
    assert!(err.contains("pbnet_blink.onnx is missing"), "{err}");
}

#[test]
fn missing_corrupt_and_truncated_portraits() {
    let err = run_with(&[
        ("model-path", &pack64()),
        ("image", "/nonexistent/face.png"),
    ])
    .unwrap_err();
    assert!(err.contains("/nonexistent/face.png"), "{err}");
    let dir = tmpdir("badimage");
    let corrupt = dir.join("corrupt.png");
    std::fs::write(&corrupt, b"\x89PNG\r\n\x1a\nthis is not a png").unwrap();
    let err = run_with(&[
        ("model-path", &pack64()),
        ("image", corrupt.to_str().unwrap()),
    ])
    .unwrap_err();
    assert!(err.contains("corrupt.png"), "{err}");
    let jpeg = std::fs::read(data("mpl_grace_hopper.jpg")).unwrap();
    let truncated = dir.join("truncated.jpg");
    std::fs::write(&truncated, &jpeg[..jpeg.len() / 3]).unwrap();
    let err = run_with(&[
        ("model-path", &pack64()),
        ("image", truncated.to_str().unwrap()),
    ])
    .unwrap_err();
    assert!(err.contains("truncated.jpg"), "{err}");
}

#[test]
fn wrong_audio_caps_name_the_fix() {
    // 48 kHz audio straight into the element, without audioresample.
    init();
    let pipeline = gst::parse::launch(&format!(
        "filesrc location={} ! wavparse ! dawnavatar name=d model-path={} image={} execution-provider=cpu ! fakesink",
        data("front_center_48k.wav").display(),
        pack64(),
        portrait()
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let err = run_pipeline(&pipeline, Duration::from_secs(30)).unwrap_err();
    assert!(
        err.to_lowercase().contains("negotiat")
            || err.contains("not-negotiated")
            || err.contains("audioresample"),
        "{err}"
    );
}

/// ONNX Runtime is loaded once per process, so the library cases run in a child process of
/// this test binary (`test`, with `ORT_DYLIB_PATH` set to `dylib` or removed); the child prints
/// `CHILD-OK` when its assertions hold.
fn in_child(test: &str, dylib: Option<&str>) {
    let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", test, "--nocapture"])
        .env("DAWN_TEST_CHILD", "1");
    match dylib {
        Some(p) => cmd.env("ORT_DYLIB_PATH", p),
        None => cmd.env_remove("ORT_DYLIB_PATH"),
    };
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("CHILD-OK"),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn is_child() -> bool {
    std::env::var_os("DAWN_TEST_CHILD").is_some()
}

#[test]
fn missing_onnx_runtime_library() {
    if is_child() {
        let err = run_with(&[("model-path", &pack64()), ("image", &portrait())]).unwrap_err();
        assert!(err.contains("ORT_DYLIB_PATH"), "{err}");
        assert!(err.contains("/nonexistent/libonnxruntime.so"), "{err}");
        println!("CHILD-OK: {err}");
        return;
    }
    in_child(
        "missing_onnx_runtime_library",
        Some("/nonexistent/libonnxruntime.so"),
    );
}

#[test]
fn a_file_that_is_not_onnx_runtime_is_an_error_naming_the_fix() {
    if is_child() {
        let err = run_with(&[("model-path", &pack64()), ("image", &portrait())]).unwrap_err();
        assert!(
            err.contains("could not load the ONNX Runtime library"),
            "{err}"
        );
        assert!(err.contains("manifest.json"), "{err}");
        assert!(
            err.contains("tools/setup.sh") && err.contains(gstdawn::engine::runtime::ORT_VERSION),
            "{err}"
        );
        println!("CHILD-OK: {err}");
        return;
    }
    // Any existing file that is not a shared library.
    let not_a_library = pack64() + "/manifest.json";
    in_child(
        "a_file_that_is_not_onnx_runtime_is_an_error_naming_the_fix",
        Some(&not_a_library),
    );
}

/// Without `ORT_DYLIB_PATH` the plugin loads the library whose path was fixed at build time
/// (here: the one tools/setup.sh installed in this checkout's `.ort/`).
#[test]
fn onnx_runtime_is_found_without_ort_dylib_path() {
    use gstdawn::engine::runtime::{self, BUILD_TIME_LIBRARY, ORT_VERSION};
    if is_child() {
        let (path, origin) = runtime::library_path().unwrap();
        assert_eq!(path, std::path::Path::new(BUILD_TIME_LIBRARY), "{origin}");
        assert_eq!(origin, "the path fixed at build time");
        assert!(BUILD_TIME_LIBRARY.ends_with(&format!("libonnxruntime.so.{ORT_VERSION}")));
        runtime::Runtime::new(runtime::RuntimeConfig {
            provider: runtime::Provider::Cpu,
            ..Default::default()
        })
        .unwrap();
        println!("CHILD-OK: {}", path.display());
        return;
    }
    assert!(
        std::path::Path::new(BUILD_TIME_LIBRARY).is_file(),
        "{BUILD_TIME_LIBRARY} missing: run tools/setup.sh"
    );
    in_child("onnx_runtime_is_found_without_ort_dylib_path", None);
}

/// An explicit GPU provider that cannot load is an error, not a silent CPU fallback.
#[test]
fn explicit_cuda_without_gpu_is_an_error() {
    let err = run_with(&[
        ("model-path", &pack64()),
        ("image", &portrait()),
        ("execution-provider", "cuda"),
    ])
    .unwrap_err();
    assert!(err.contains("execution-provider=cuda"), "{err}");
    assert!(
        err.contains("execution-provider=cpu"),
        "the fix must be named: {err}"
    );
}
