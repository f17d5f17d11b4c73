#!/usr/bin/env bash
# Stream the avatar live to an RTMP server (YouTube, Twitch, nginx-rtmp, OBS ingest...).
#   pipelines/rtmp.sh PORTRAIT PACK rtmp://host/app/streamkey [SPEECH_FILE]
# Without SPEECH_FILE the microphone (DAWN_AUDIO_SRC, default autoaudiosrc) drives the avatar.
# Video: H.264 Constrained Baseline, I420 (what RTMP servers and players accept), 25 fps,
# keyframe every 2 s. Audio: AAC 48 kHz stereo. flvmux streamable=true for live ingest.
set -euo pipefail
source "$(dirname "$0")/common.sh"
[ $# -ge 3 ] || die "usage: $0 PORTRAIT PACK rtmp://host/app/key [SPEECH_FILE]"
image=$1 pack=$2 url=$3 file=${4:-}
need_file "$image" portrait; need_pack "$pack"
case "$url" in rtmp://*|rtmps://*) ;; *) die "'$url' is not an rtmp:// URL" ;; esac
setup_env
need_elements x264enc h264parse flvmux rtmp2sink voaacenc aacparse
if [ -n "$file" ]; then
  need_file "$file" "speech file"
  # A file is played at real-time speed so the stream is live.
  src="filesrc location=\"$file\" ! decodebin ! audioconvert ! audioresample ! identity sync=true"
else
  src="${DAWN_AUDIO_SRC:-autoaudiosrc}"
fi
sink="${DAWN_VIDEO_SINK:-rtmp2sink location=\"$url\"}"
eval gst-launch-1.0 -e \
  "$src" ! audioconvert ! audioresample ! audio/x-raw,rate=16000,channels=1 ! tee name=t \
  t. ! queue ! dawnavatar image="\"$image\"" model-path="\"$pack\"" ${DAWN_PROPS:-} ! \
    videoconvert ! video/x-raw,format=I420 ! \
    x264enc tune=zerolatency speed-preset=veryfast key-int-max=50 bitrate=1500 ! \
    video/x-h264,profile=constrained-baseline ! h264parse ! queue ! \
    flvmux name=mux streamable=true ! "$sink" \
  t. ! queue max-size-time=0 max-size-buffers=0 max-size-bytes=0 ! audioconvert ! audioresample ! \
    audio/x-raw,rate=48000,channels=2 ! voaacenc bitrate=128000 ! aacparse ! mux.
