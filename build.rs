//! Build-time facts for the plugin: GStreamer's release metadata (commit id and date), and where
//! ONNX Runtime is (`src/engine/runtime.rs`): the version from Cargo.toml's
//! `[package.metadata.onnxruntime]` and the library tools/setup.sh installs in this source tree.

use std::path::Path;

fn main() {
    gst_plugin_version_helper::info();
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let manifest = Path::new(&dir).join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).expect("Cargo.toml is readable");
    let version = onnxruntime_version(&text)
        .expect("Cargo.toml needs [package.metadata.onnxruntime] with version = \"X.Y.Z\"");
    let library =
        Path::new(&dir).join(format!(".ort/onnxruntime/capi/libonnxruntime.so.{version}"));
    println!("cargo:rustc-env=DAWN_ORT_VERSION={version}");
    println!(
        "cargo:rustc-env=DAWN_ORT_PROJECT_LIBRARY={}",
        library.display()
    );
}

/// The `version` key of the `[package.metadata.onnxruntime]` table (a plain line scan: the
/// table is ours and written in this one form).
fn onnxruntime_version(cargo_toml: &str) -> Option<String> {
    let mut in_table = false;
    for line in cargo_toml.lines().map(str::trim) {
        if line.starts_with('[') {
            in_table = line == "[package.metadata.onnxruntime]";
        } else if in_table && let Some(value) = line.strip_prefix("version") {
            let value = value.trim_start().strip_prefix('=')?.trim();
            return Some(value.trim_matches('"').to_string());
        }
    }
    None
}
