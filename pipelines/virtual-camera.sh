#!/usr/bin/env bash
# Microphone → avatar → virtual camera (v4l2loopback), for OBS, Zoom, browsers...
#   pipelines/virtual-camera.sh PORTRAIT PACK [/dev/videoN] [WIDTHxHEIGHT]
# One-time set-up of the loopback device (needs root and the v4l2loopback-dkms package):
#   sudo modprobe v4l2loopback devices=1 video_nr=10 card_label="DAWN avatar" exclusive_caps=1
# Then in OBS: Sources → + → Video Capture Device → "DAWN avatar".
# The camera shows the whole portrait with the animated face (output=portrait) at WIDTHxHEIGHT
# (default 1280x720, square pixels; a single number N means NxN).
# A camera carries no sound, and the avatar lags the microphone by the element's latency
# (printed at start, about 2.5 s with the live defaults): delay the microphone by that much in
# the receiving app, or let this script play the sound in sync: DAWN_AUDIO_SINK names a sink,
# e.g. a PulseAudio null sink whose monitor the app then uses as its microphone:
#   pactl load-module module-null-sink sink_name=dawn_mic
#   DAWN_AUDIO_SINK="pulsesink device=dawn_mic" pipelines/virtual-camera.sh ...
#   (then pick "Monitor of Null Output" as the microphone in Zoom, OBS, the browser)
# The element repeats frames when inference is late, so the camera never freezes or stalls.
set -euo pipefail
source "$(dirname "$0")/common.sh"
[ $# -ge 2 ] || die "usage: $0 PORTRAIT PACK [/dev/videoN] [WIDTHxHEIGHT]"
image=$1 pack=$2 device=${3:-/dev/video10} size=${4:-1280x720}
[[ "$size" =~ ^[0-9]+$ ]] && size=${size}x$size
[[ "$size" =~ ^[0-9]+x[0-9]+$ ]] || die "size '$size' is not WIDTHxHEIGHT"
w=${size%x*} h=${size#*x}
need_file "$image" portrait; need_pack "$pack"
setup_env
if [ -z "${DAWN_VIDEO_SINK:-}" ]; then
  need_elements v4l2sink
  [ -e "$device" ] || die "$device does not exist; create it with:
  sudo modprobe v4l2loopback devices=1 video_nr=${device#/dev/video} card_label=\"DAWN avatar\" exclusive_caps=1"
fi
latency_note
sink="${DAWN_VIDEO_SINK:-v4l2sink device=$device sync=true}"
sound=""
if [ -n "${DAWN_AUDIO_SINK:-}" ]; then
  # The element's audio_src pad carries the audio it animates (16 kHz mono); the sink plays
  # each sample at its time + the pipeline latency: in sync with the camera.
  sound="avatar.audio_src ! queue ! audioconvert ! audioresample ! $DAWN_AUDIO_SINK"
fi
eval gst-launch-1.0 -e \
  "${DAWN_AUDIO_SRC:-autoaudiosrc}" ! audioconvert ! audioresample ! \
    audio/x-raw,rate=16000,channels=1 ! dawnavatar name=avatar image="\"$image\"" model-path="\"$pack\"" output=portrait output-width=$w \
    output-height=$h ${DAWN_PROPS:-} ! \
    videoconvert ! videoscale ! video/x-raw,format=YUY2,width=$w,height=$h,pixel-aspect-ratio=1/1 ! \
    "$sink" "$sound"
