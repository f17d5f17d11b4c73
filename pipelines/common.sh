# Shared by the pipeline scripts: finds the plugin and ONNX Runtime, checks prerequisites.
# Environment overrides (all optional):
#   DAWN_PLUGIN_DIR   directory holding libgstdawn.so (default: target/release, else target/debug)
#   ORT_DYLIB_PATH    the ONNX Runtime library (default: the one tools/setup.sh installed, whose
#                     path the build fixed in the plugin)
#   DAWN_PROPS        extra dawnavatar properties, e.g. "sampling-steps=10 execution-provider=cpu"
#   DAWN_AUDIO_SRC    audio source for the live scripts (default: autoaudiosrc)
#   DAWN_VIDEO_SINK   replaces the real sink (tests use it for devices this machine lacks)
#   DAWN_AUDIO_SINK   where the live scripts play the avatar's sound (see each script)

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

# The live latency dawnavatar reports on top of its audio source's own, in ms, from the
# properties in DAWN_PROPS (defaults otherwise): (chunk-frames + lookahead-frames + 13) x 40 ms
# of audio the element waits for, plus the `latency` budget. The live defaults give 2480 ms;
# a microphone adds its own 10-80 ms (2.56 s in total was measured with a live test source).
avatar_latency_ms() {
  local chunk=16 lookahead=8 budget=1000 p
  for p in ${DAWN_PROPS:-}; do
    case "$p" in
      chunk-frames=*) [ "${p#*=}" -gt 0 ] && chunk=${p#*=} ;;
      lookahead-frames=*) [ "${p#*=}" -ge 0 ] && lookahead=${p#*=} ;;
      latency=*) budget=${p#*=} ;;
    esac
  done
  echo $(( (chunk + lookahead + 13) * 40 + budget ))
}

# Tells the user how far the avatar lags its microphone, on stderr.
latency_note() {
  echo "$(basename "$0"): the avatar lags the microphone by about $(avatar_latency_ms) ms plus the" \
    "microphone's own latency (about 2.5 s with the live defaults). Delay any other copy of the" \
    "microphone by that much (OBS: Advanced Audio Properties -> Sync Offset), or use the sound" \
    "this pipeline plays, which is already in sync." >&2
}
