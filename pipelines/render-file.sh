#!/usr/bin/env bash
# Render a portrait + a speech file into an MP4 (H.264 + AAC), audio and video in sync.
#   pipelines/render-file.sh PORTRAIT SPEECH PACK OUT.mp4
# The audio is teed before dawnavatar and muxed with its video; the audio queue is unbounded
# because the muxer waits for video, which lags the audio by a chunk while it is generated.
set -euo pipefail
source "$(dirname "$0")/common.sh"
[ $# -eq 4 ] || die "usage: $0 PORTRAIT SPEECH PACK OUT.mp4"
image=$1 audio=$2 pack=$3 out=$4
need_file "$image" portrait; need_file "$audio" "speech file"; need_pack "$pack"
setup_env
need_elements decodebin x264enc h264parse mp4mux voaacenc aacparse
gst-launch-1.0 -e \
  filesrc location="$audio" ! decodebin ! audioconvert ! audioresample ! \
    audio/x-raw,rate=16000,channels=1 ! tee name=t \
  t. ! queue ! dawnavatar image="$image" model-path="$pack" ${DAWN_PROPS:-} ! \
    videoconvert ! video/x-raw,format=I420 ! x264enc ! video/x-h264,profile=high ! h264parse ! \
    queue ! mp4mux name=mux ! filesink location="$out" \
  t. ! queue max-size-time=0 max-size-buffers=0 max-size-bytes=0 ! audioconvert ! audioresample ! \
    voaacenc bitrate=64000 ! aacparse ! mux.
