#!/usr/bin/env bash
# Runs the whole gst-dawn test suite: Rust unit + integration tests (element, engine, golden
# parity, pipelines, RTMP), the Python tools' unit tests, and the pipeline scripts.
# Needs tools/setup.sh to have run once.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$root/.ort/onnxruntime/capi/libonnxruntime.so.1.31.1}"
[ -f "$ORT_DYLIB_PATH" ] || { echo "test: $ORT_DYLIB_PATH missing; run tools/setup.sh first" >&2; exit 1; }

echo "== cargo test"
cargo test --all-targets 2>&1
echo "== python tools"
.venv/bin/python -m unittest discover -s tools/tests 2>&1
echo "== all tests passed"
