# Shared by the pipeline scripts: finds the plugin and ONNX Runtime, checks prerequisites.
# Environment overrides (all optional):
#   DAWN_PLUGIN_DIR   directory holding libgstdawn.so (default: target/release, else target/debug)
#   ORT_DYLIB_PATH    the ONNX Runtime library (default: .ort/... from tools/setup.sh)
#   DAWN_PROPS        extra dawnavatar properties, e.g. "sampling-steps=10 execution-provider=cpu"
#   DAWN_AUDIO_SRC    audio source for the live scripts (default: autoaudiosrc)
#   DAWN_VIDEO_SINK   replaces the real sink (tests use it for devices this machine lacks)

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

die() { echo "$(basename "$0"): $*" >&2; exit 1; }

setup_env() {
  if [ -z "${DAWN_PLUGIN_DIR:-}" ]; then
    for d in "$root/target/release" "$root/target/debug"; do
      [ -f "$d/libgstdawn.so" ] && { DAWN_PLUGIN_DIR=$d; break; }
    done
  fi
  [ -n "${DAWN_PLUGIN_DIR:-}" ] && [ -f "$DAWN_PLUGIN_DIR/libgstdawn.so" ] ||
    die "libgstdawn.so not found; build it first: cargo build --release (after tools/setup.sh)"
  export GST_PLUGIN_PATH="$DAWN_PLUGIN_DIR${GST_PLUGIN_PATH:+:$GST_PLUGIN_PATH}"
  export ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$root/.ort/onnxruntime/capi/libonnxruntime.so.1.31.1}"
  [ -f "$ORT_DYLIB_PATH" ] || die "ONNX Runtime not found at $ORT_DYLIB_PATH; run tools/setup.sh"
  command -v gst-launch-1.0 >/dev/null || die "gst-launch-1.0 missing; run tools/setup.sh (gstreamer1.0-tools)"
  gst-inspect-1.0 dawnavatar >/dev/null 2>&1 ||
    die "GStreamer cannot load dawnavatar from $DAWN_PLUGIN_DIR (try: GST_DEBUG=2 gst-inspect-1.0 dawnavatar)"
}

need_elements() {
  for e in "$@"; do
    gst-inspect-1.0 "$e" >/dev/null 2>&1 ||
      die "GStreamer element '$e' missing; run tools/setup.sh (gstreamer1.0-plugins-good/-bad/-ugly/-libav)"
  done
}

need_file() { [ -f "$1" ] || die "$2 '$1' not found"; }
need_pack() { [ -f "$1/manifest.json" ] || die "model pack '$1' has no manifest.json (see docs/model-pack.md; tests/models/tiny128 is the untrained test pack)"; }
