#!/usr/bin/env bash
# The avatar in a browser: serves http://127.0.0.1:PORT/, where the avatar plays with its sound
# over WebRTC (VP8 + Opus, WHEP-style signalling, any number of viewers on the same stream).
#   pipelines/webrtc.sh PORTRAIT SPEECH_FILE PACK [PORT]   # the file, played live in a loop
#   pipelines/webrtc.sh PORTRAIT --mic PACK [PORT]          # the microphone (DAWN_AUDIO_SRC)
# PORT defaults to 8080 (0 picks a free one; the URL is printed). The page shows frames
# decoded, frame rate, resolution and round-trip time. Ctrl-C stops.
# A file is looped so that a viewer who opens the page at any time finds the avatar talking.
# DAWN_PROPS adds dawnavatar properties (e.g. "output=portrait output-width=1280
# output-height=720"); DAWN_WEBRTC_ARGS adds server options (--bind 0.0.0.0 to serve the LAN,
# --stun stun://host:port behind NAT, --max-viewers N). The server is examples/webrtc, built
# on first use (DAWN_WEBRTC_BIN points at another build).
set -euo pipefail
source "$(dirname "$0")/common.sh"
[ $# -ge 3 ] || die "usage: $0 PORTRAIT (SPEECH_FILE|--mic) PACK [PORT]"
image=$1 input=$2 pack=$3 port=${4:-8080}
need_file "$image" portrait; need_pack "$pack"
case "$port" in ''|*[!0-9]*) die "PORT '$port' is not a number" ;; esac
bin=${DAWN_WEBRTC_BIN:-$root/target/release/examples/webrtc}
if [ ! -x "$bin" ]; then
  [ -z "${DAWN_WEBRTC_BIN:-}" ] || die "DAWN_WEBRTC_BIN=$bin is not an executable"
  echo "$(basename "$0"): building the server once: cargo build --release --example webrtc" >&2
  (cd "$root" && cargo build --release --example webrtc) || die "cargo build failed"
fi
args=(--image "$image" --model "$pack" --port "$port")
if [ "$input" = "--mic" ]; then
  args+=(--source "${DAWN_AUDIO_SRC:-autoaudiosrc}")
else
  need_file "$input" "speech file"
  args+=(--audio "$input")
fi
for p in ${DAWN_PROPS:-}; do args+=(--set "$p"); done
# shellcheck disable=SC2086 # server options are words
exec "$bin" "${args[@]}" ${DAWN_WEBRTC_ARGS:-}
