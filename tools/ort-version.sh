#!/usr/bin/env bash
# Prints the ONNX Runtime version gst-dawn is built and tested with: the `version` of the
# [package.metadata.onnxruntime] table in Cargo.toml (the one place that holds it).
set -euo pipefail
cargo_toml="$(cd "$(dirname "$0")/.." && pwd)/Cargo.toml"
version=$(awk '/^\[/ { t = ($0 == "[package.metadata.onnxruntime]") }
  t && /^version *=/ { gsub(/^version *= *"|".*$/, ""); print; exit }' "$cargo_toml")
[ -n "$version" ] || { echo "ort-version: no [package.metadata.onnxruntime] version in $cargo_toml" >&2; exit 1; }
echo "$version"
