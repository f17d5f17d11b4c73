#!/usr/bin/env bash
# Prints the pipeline to paste into an OBS "GStreamer Source" (obs-gstreamer plugin,
# github.com/fzwoch/obs-gstreamer), which provides the sinks named `video` and `audio`.
#   pipelines/obs-source.sh PORTRAIT PACK
# In OBS, the source must find the plugin: start OBS with
#   GST_PLUGIN_PATH=<repo>/target/release ORT_DYLIB_PATH=<repo>/.ort/onnxruntime/capi/libonnxruntime.so.1.31.1 obs
# (or `source .ort/env.sh; obs`). Without obs-gstreamer, use pipelines/virtual-camera.sh and add
# the loopback device as a Video Capture Device instead.
set -euo pipefail
source "$(dirname "$0")/common.sh"
[ $# -eq 2 ] || die "usage: $0 PORTRAIT PACK"
image=$(realpath "$1") pack=$(realpath "$2")
need_file "$image" portrait; need_pack "$pack"
cat <<PIPE
autoaudiosrc ! audioconvert ! audioresample ! audio/x-raw,rate=16000,channels=1 ! dawnavatar image="$image" model-path="$pack" ! videoconvert ! video.
PIPE
