#!/usr/bin/env bash
# Installs everything gst-dawn needs on a fresh Debian 12 / Ubuntu machine:
# GStreamer (dev files, tools, plugins), nginx-rtmp for the RTMP test, the
# ONNX Runtime shared library from the PyPI wheel into .ort/, and the Python
# packages of the tools (onnx, numpy, onnxruntime) into .venv/.
#
# Idempotent: re-running only checks what is already there.
# Usage: tools/setup.sh [--gpu]   (--gpu takes onnxruntime-gpu + CUDA 13 wheels)
set -euo pipefail

ORT_VERSION=1.31.1
ONNX_VERSION=1.23.2
NUMPY_VERSION=2.2.6
root=$(cd "$(dirname "$0")/.." && pwd)
gpu=0
[ "${1:-}" = "--gpu" ] && gpu=1

say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

sudo_cmd=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "setup: need root or sudo for apt-get" >&2; exit 1; }
  sudo_cmd="sudo"
fi

apt_pkgs=(pkg-config libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev
  gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav
  gstreamer1.0-plugins-base-apps nginx libnginx-mod-rtmp python3-venv ffmpeg)
missing=()
for p in "${apt_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "apt: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $sudo_cmd apt-get update -qq
  $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # nginx starts a system service on install; the tests run their own instance.
  $sudo_cmd systemctl disable --now nginx >/dev/null 2>&1 || $sudo_cmd service nginx stop >/dev/null 2>&1 || true
fi

if ! command -v cargo >/dev/null; then
  echo "setup: cargo not found. Install Rust (>= 1.92) from https://rustup.rs and re-run." >&2
  exit 1
fi

# ONNX Runtime: the shared library straight from the PyPI wheel (no Python needed at run time).
ort_pkg=onnxruntime
[ $gpu = 1 ] && ort_pkg=onnxruntime-gpu
ort_lib="$root/.ort/onnxruntime/capi/libonnxruntime.so.$ORT_VERSION"
if [ ! -f "$ort_lib" ] || { [ $gpu = 1 ] && [ ! -f "$root/.ort/onnxruntime/capi/libonnxruntime_providers_cuda.so" ]; }; then
  say "ONNX Runtime $ORT_VERSION ($ort_pkg) -> .ort/"
  rm -rf "$root/.ort"
  if [ $gpu = 1 ]; then
    python3 -m pip install -q --target "$root/.ort" "onnxruntime-gpu[cuda,cudnn]==$ORT_VERSION"
  else
    python3 -m pip install -q --no-deps --target "$root/.ort" "onnxruntime==$ORT_VERSION"
  fi
fi

# Python tools (tiny-pack generator, golden reference, exporter unit tests).
if [ ! -x "$root/.venv/bin/python" ]; then
  say "Python venv -> .venv/"
  python3 -m venv "$root/.venv"
fi
if ! "$root/.venv/bin/python" -c "import onnx, numpy, onnxruntime" 2>/dev/null; then
  "$root/.venv/bin/python" -m pip install -q "onnx==$ONNX_VERSION" "numpy==$NUMPY_VERSION" "onnxruntime==$ORT_VERSION"
fi

# Shell wiring for users (cargo gets it from .cargo/config.toml).
cat > "$root/.ort/env.sh" <<ENV
# source this file: wires gst-dawn's ONNX Runtime and plugin path into the shell
export ORT_DYLIB_PATH="$ort_lib"
export GST_PLUGIN_PATH="$root/target/release\${GST_PLUGIN_PATH:+:\$GST_PLUGIN_PATH}"
ENV
say "done. For your shell: source .ort/env.sh"
