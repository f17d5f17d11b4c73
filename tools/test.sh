#!/usr/bin/env bash
# Runs the whole gst-dawn test suite: Rust unit + integration tests (element, engine, golden
# parity, portrait, pipelines, RTMP, text to speech, the WebRTC viewer in headless Chromium),
# the Python tools' unit tests, and the pipeline scripts.
# Works as the first command on a fresh machine: it runs tools/setup.sh first (which only checks
# when everything is already installed).
#
# Python tests that need what CI does not install (torch, the upstream DAWN-pytorch checkout) are
# listed as NOT RUN with their reason at the end. To run them too, give a Python with torch
# (the exporter's environment, docs/exporter.md) and the checkout:
#   DAWN_TORCH_PYTHON=~/venv-dawn-export/bin/python DAWN_SRC=~/DAWN-pytorch tools/test.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

bash tools/setup.sh

echo "== cargo test"
cargo test --all-targets 2>&1
# The Python tests drive the example binaries (parity, bench): the test build above only makes
# their test-harness variants.
echo "== cargo build --examples"
cargo build --examples 2>&1
# Runs the unittest files given (or discovers the folder given) with the Python $1 and appends
# "  NOT RUN: test id: reason" for every skipped test to $NOT_RUN_LOG.
run_python_tests() {
  "$1" - "${@:2}" <<'PY'
import os, sys, unittest
args = sys.argv[1:]
loader = unittest.defaultTestLoader
if len(args) == 1 and os.path.isdir(args[0]):
    suite = loader.discover(args[0], top_level_dir=".")
else:
    suite = loader.loadTestsFromNames(n[:-3].replace("/", ".") for n in args)
result = unittest.TextTestRunner(verbosity=1).run(suite)
with open(os.environ["NOT_RUN_LOG"], "a") as f:
    for test, reason in result.skipped:
        f.write(f"  NOT RUN: {test.id()}: {reason}\n")
sys.exit(0 if result.wasSuccessful() else 1)
PY
}

NOT_RUN_LOG=$(mktemp)
export NOT_RUN_LOG
trap 'rm -f "$NOT_RUN_LOG"' EXIT
echo "== python tools"
run_python_tests .venv/bin/python tools/tests 2>&1
# The torch suite (tools/torch_tests: exporter vs upstream, parity with upstream DAWN, and the
# face-model converter) needs torch and DAWN_SRC; it runs wherever $DAWN_TORCH_PYTHON (or the
# venv) has torch and fails when DAWN_SRC is missing.
torch_py=${DAWN_TORCH_PYTHON:-.venv/bin/python}
if "$torch_py" -c "import torch" 2>/dev/null; then
  echo "== python torch suite ($torch_py)"
  run_python_tests "$torch_py" tools/torch_tests 2>&1
  run_python_tests "$torch_py" tools/tests/test_face_converter.py 2>&1
else
  echo "  NOT RUN: tools/torch_tests and the face converter's conversion: $torch_py has no torch" \
    "(pip install -e '.[export]', or set DAWN_TORCH_PYTHON to a Python with torch, and DAWN_SRC to" \
    "a DAWN-pytorch checkout)" >> "$NOT_RUN_LOG"
fi
echo "== all tests passed"
if [ -s "$NOT_RUN_LOG" ]; then
  echo "== not run here (each says what it needs):"
  cat "$NOT_RUN_LOG"
fi
