#!/usr/bin/env bash
# Installs everything gst-dawn needs on a fresh Debian 12 / Ubuntu machine:
# the C toolchain, GStreamer (dev files, tools, plugins), ffmpeg and nginx-rtmp for the
# pipeline tests, gstreamer1.0-nice for webrtcbin, espeak-ng for text to speech, Chromium and
# playwright-core (npm, tests/browser) for the browser test, Python 3 with venv, the ONNX Runtime shared library from the PyPI wheel into
# .ort/, and the Python packages of the tools (onnx, numpy, onnxruntime) into .venv/.
# The ONNX Runtime version is the one in Cargo.toml ([package.metadata.onnxruntime]).
#
# Idempotent: re-running only checks what is already there. It installs packages and nothing
# else: it never starts, stops or reconfigures a service (installing Debian's nginx package
# starts its default site, as Debian does; the RTMP test runs a private nginx on a free port).
# Usage: tools/setup.sh [--gpu]   (--gpu takes onnxruntime-gpu + CUDA 13 wheels)
set -euo pipefail

ONNX_VERSION=1.23.2
NUMPY_VERSION=2.2.6
root=$(cd "$(dirname "$0")/.." && pwd)
gpu=0
[ "${1:-}" = "--gpu" ] && gpu=1

say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

ORT_VERSION=$(bash "$root/tools/ort-version.sh")

sudo_cmd=""
if [ "$(id -u)" -ne 0 ]; then
  sudo_cmd="sudo"
fi

apt_pkgs=(build-essential pkg-config git python3 python3-venv
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libgstreamer-plugins-bad1.0-dev
  gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav
  gstreamer1.0-plugins-base-apps gstreamer1.0-nice nginx libnginx-mod-rtmp ffmpeg
  espeak-ng chromium)
# Node.js runs the browser test's driver; Debian's packages only where none is installed.
command -v npm >/dev/null || apt_pkgs+=(nodejs npm)
missing=()
for p in "${apt_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ -n "$sudo_cmd" ] && ! command -v sudo >/dev/null; then
    echo "setup: need root or sudo to install ${missing[*]}" >&2
    exit 1
  fi
  say "apt: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $sudo_cmd apt-get update -qq
  $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null; then
  echo "setup: cargo not found. Install Rust (>= 1.92) from https://rustup.rs and re-run." >&2
  exit 1
fi

# Python tools (tiny-pack generator, golden reference, exporter unit tests). Its pip also
# fetches the ONNX Runtime wheel below, so no system pip is needed.
if [ ! -x "$root/.venv/bin/python" ]; then
  say "Python venv -> .venv/"
  python3 -m venv "$root/.venv"
fi
# The tools are the package of pyproject.toml, installed editable with its dev group.
if ! (cd / && "$root/.venv/bin/python" -c "import tools.reference, onnx, numpy, onnxruntime, pytest") 2>/dev/null; then
  say "Python tools (pip install -e .[dev]) -> .venv/"
  "$root/.venv/bin/python" -m pip install -q -e "$root[dev]" \
    "onnx==$ONNX_VERSION" "numpy==$NUMPY_VERSION" "onnxruntime==$ORT_VERSION"
fi

# ONNX Runtime: the shared library straight from the PyPI wheel (no Python needed at run time).
# build.rs fixes this path in the plugin, so a build after this finds it without any variable.
ort_pkg=onnxruntime
[ $gpu = 1 ] && ort_pkg=onnxruntime-gpu
ort_lib="$root/.ort/onnxruntime/capi/libonnxruntime.so.$ORT_VERSION"
if [ ! -f "$ort_lib" ] || { [ $gpu = 1 ] && [ ! -f "$root/.ort/onnxruntime/capi/libonnxruntime_providers_cuda.so" ]; }; then
  say "ONNX Runtime $ORT_VERSION ($ort_pkg) -> .ort/"
  rm -rf "$root/.ort"
  if [ $gpu = 1 ]; then
    "$root/.venv/bin/python" -m pip install -q --target "$root/.ort" "onnxruntime-gpu[cuda,cudnn]==$ORT_VERSION"
  else
    "$root/.venv/bin/python" -m pip install -q --no-deps --target "$root/.ort" "onnxruntime==$ORT_VERSION"
  fi
fi

# The browser test's driver (playwright-core, pinned by tests/browser/package-lock.json; it
# drives the system's Chromium and downloads no browser).
if [ ! -d "$root/tests/browser/node_modules/playwright-core" ]; then
  say "npm: playwright-core -> tests/browser/node_modules/"
  npm ci --prefix "$root/tests/browser" --no-audit --no-fund --loglevel=error
fi

# Shell wiring for users: the plugin path for gst-launch-1.0 and friends.
cat > "$root/.ort/env.sh" <<ENV
# source this file: puts gst-dawn's release build on GStreamer's plugin path
export GST_PLUGIN_PATH="$root/target/release\${GST_PLUGIN_PATH:+:\$GST_PLUGIN_PATH}"
ENV
say "done. For your shell: source .ort/env.sh"
