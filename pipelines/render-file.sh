#!/usr/bin/env bash
# Render a portrait + a speech file into an MP4 (H.264 + AAC), audio and video in sync.
#   pipelines/render-file.sh PORTRAIT SPEECH PACK OUT.mp4
# The decoded audio is split before its conversion to the avatar's 16 kHz mono, so the MP4
# keeps the file's own rate and channels; the audio queue must be unbounded because the muxer
# waits for video, which lags the audio by a whole chunk while it is generated (a default
# 1 s queue fills and the tee blocks: a preroll that never ends).
# progressreport prints the render's progress every 2 s, in output time: the element answers
# position queries with how far the video is, not how far the audio was read.
set -euo pipefail
source "$(dirname "$0")/common.sh"
[ $# -eq 4 ] || die "usage: $0 PORTRAIT SPEECH PACK OUT.mp4"
image=$1 audio=$2 pack=$3 out=$4
need_file "$image" portrait; need_file "$audio" "speech file"; need_pack "$pack"
setup_env
need_elements decodebin x264enc h264parse mp4mux voaacenc aacparse progressreport
# Video branch: the avatar. Audio branch: the file's own sound (full band, its channels),
# teed before the conversion to the avatar's 16 kHz mono; the element's audio_src pad would
# carry that 16 kHz mono audio instead, with no tee and no queue sizing (README).
avatar="audioconvert ! audioresample ! audio/x-raw,rate=16000,channels=1 ! \
  dawnavatar image=\"$image\" model-path=\"$pack\" ${DAWN_PROPS:-}"
audio_out="audioconvert ! audioresample ! voaacenc bitrate=128000 ! aacparse ! mux."
eval gst-launch-1.0 -e \
  filesrc location="\"$audio\"" ! decodebin ! tee name=t \
  t. ! queue ! "$avatar" ! progressreport update-freq=2 ! \
    videoconvert ! video/x-raw,format=I420 ! x264enc ! video/x-h264,profile=high ! h264parse ! \
    queue ! mp4mux name=mux ! filesink location="\"$out\"" \
  t. ! queue max-size-time=0 max-size-buffers=0 max-size-bytes=0 ! "$audio_out"
