#!/usr/bin/env bash
# Microphone → avatar → virtual camera (v4l2loopback), for OBS, Zoom, browsers...
#   pipelines/virtual-camera.sh PORTRAIT PACK [/dev/videoN] [SIZE]
# One-time set-up of the loopback device (needs root and the v4l2loopback-dkms package):
#   sudo modprobe v4l2loopback devices=1 video_nr=10 card_label="DAWN avatar" exclusive_caps=1
# Then in OBS: Sources → + → Video Capture Device → "DAWN avatar".
# SIZE scales the square output (default 512) so apps that dislike tiny cameras accept it.
# The element repeats frames when inference is late, so the camera never freezes or stalls.
set -euo pipefail
source "$(dirname "$0")/common.sh"
[ $# -ge 2 ] || die "usage: $0 PORTRAIT PACK [/dev/videoN] [SIZE]"
image=$1 pack=$2 device=${3:-/dev/video10} size=${4:-512}
need_file "$image" portrait; need_pack "$pack"
setup_env
if [ -z "${DAWN_VIDEO_SINK:-}" ]; then
  need_elements v4l2sink
  [ -e "$device" ] || die "$device does not exist; create it with:
  sudo modprobe v4l2loopback devices=1 video_nr=${device#/dev/video} card_label=\"DAWN avatar\" exclusive_caps=1"
fi
sink="${DAWN_VIDEO_SINK:-v4l2sink device=$device sync=true}"
eval gst-launch-1.0 -e \
  "${DAWN_AUDIO_SRC:-autoaudiosrc}" ! audioconvert ! audioresample ! \
  dawnavatar image="\"$image\"" model-path="\"$pack\"" ${DAWN_PROPS:-} ! \
  videoconvert ! videoscale ! video/x-raw,format=YUY2,width=$size,height=$size ! "$sink"
