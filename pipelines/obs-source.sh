#!/usr/bin/env bash
# Prints the pipeline to paste into an OBS "GStreamer Source" (obs-gstreamer plugin,
# github.com/fzwoch/obs-gstreamer), which provides the sinks named `video` and `audio`.
#   pipelines/obs-source.sh PORTRAIT PACK
# The source carries the avatar (the whole portrait, DAWN_SIZE, default 1280x720) and the
# microphone's own sound at full band (teed before the conversion to the avatar's 16 kHz mono;
# the element's audio_src pad would carry that 16 kHz mono audio instead). The sound's queue is
# unbounded: the video starts a chunk of audio later than the sound (docs/element.md).
# Keep the source's "Sync appsinks to clock" on: the sound then plays in sync with the avatar,
# about 2.5 s after it was spoken. Mute OBS's own Mic/Aux source, or
# delay it by the latency this script prints (Advanced Audio Properties -> Sync Offset).
# In OBS, the source must find the plugin: start OBS with
#   GST_PLUGIN_PATH=<repo>/target/release obs
# (or `source .ort/env.sh; obs`). Without obs-gstreamer, use pipelines/virtual-camera.sh and add
# the loopback device as a Video Capture Device instead.
set -euo pipefail
source "$(dirname "$0")/common.sh"
[ $# -eq 2 ] || die "usage: $0 PORTRAIT PACK"
image=$(realpath "$1") pack=$(realpath "$2")
need_file "$image" portrait; need_pack "$pack"
size=${DAWN_SIZE:-1280x720}
[[ "$size" =~ ^[0-9]+x[0-9]+$ ]] || die "DAWN_SIZE '$size' is not WIDTHxHEIGHT"
w=${size%x*} h=${size#*x}
latency_note
cat <<PIPE
autoaudiosrc ! tee name=t t. ! queue ! audioconvert ! audioresample ! audio/x-raw,rate=16000,channels=1 ! dawnavatar image="$image" model-path="$pack" output=portrait output-width=$w output-height=$h ${DAWN_PROPS:-} ! videoconvert ! videoscale ! video/x-raw,width=$w,height=$h,pixel-aspect-ratio=1/1 ! video. t. ! queue max-size-time=0 max-size-buffers=0 max-size-bytes=0 ! audioconvert ! audioresample ! audio.
PIPE
