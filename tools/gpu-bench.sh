#!/usr/bin/env bash
# GPU benchmark: real-time factor, first-frame and audio-to-frame latency (audio arriving in
# real time), node placement and GPU memory at 128 and 256 with live chunking (chunk 16 +
# context 16 + look-ahead 8), on CUDA or TensorRT. On a bare GPU machine (no GStreamer, no
# onnxruntime-gpu) use tools/gpu-check instead (docs/performance.md, "GPU check").
#
#   tools/setup.sh --gpu && cargo build --release --example bench
#   tools/gpu-bench.sh PACK128 PACK256 [cuda|tensorrt] [SECONDS]
#
# Packs: tools/export --random-weights gives the real architecture (timing is the same as with
# trained weights); --fp16 packs are the ones to time for real-time use. GPU memory is sampled
# with nvidia-smi every 200 ms; "flat over an hour" is checked with SECONDS=3600.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
[ $# -ge 2 ] || { sed -n 2,13p "$0"; exit 2; }
p128=$1 p256=$2 provider=${3:-cuda} seconds=${4:-60}
bench="$root/target/release/examples/bench"
[ -x "$bench" ] || { echo "build first: cargo build --release --example bench" >&2; exit 1; }
command -v nvidia-smi >/dev/null || { echo "nvidia-smi not found: no NVIDIA GPU/driver here" >&2; exit 1; }
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
for pack in "$p128" "$p256"; do
  log=$(mktemp)
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 > "$log" &
  smi=$!
  "$bench" --model "$pack" --provider "$provider" --seconds "$seconds" --live --placement
  kill $smi 2>/dev/null || true
  echo "GPU memory      max $(sort -n "$log" | tail -1) MiB, first sample $(head -1 "$log") MiB, last $(tail -1 "$log") MiB"
  rm -f "$log"
  echo
done
