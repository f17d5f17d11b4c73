#!/usr/bin/env bash
# Stream the avatar live to an RTMP server (YouTube, Twitch, nginx-rtmp, OBS ingest...).
#   pipelines/rtmp.sh PORTRAIT PACK rtmp://host/app/streamkey [SPEECH_FILE]
# Without SPEECH_FILE the microphone (DAWN_AUDIO_SRC, default autoaudiosrc) drives the avatar.
# Video: the whole portrait with the animated face (output=portrait) at DAWN_SIZE (default
# 1280x720, square pixels), H.264 Constrained Baseline, I420 (what RTMP servers and players
# accept), 25 fps, keyframe every 2 s. Audio: the source's sound, split before its conversion
# to the avatar's 16 kHz, as AAC 48 kHz stereo. flvmux streamable=true for live ingest.
# The sound is muxed with the video, so viewers get them in sync (the stream lags the
# microphone by the avatar's latency, about 2.5 s).
set -euo pipefail
source "$(dirname "$0")/common.sh"
[ $# -ge 3 ] || die "usage: $0 PORTRAIT PACK rtmp://host/app/key [SPEECH_FILE]"
image=$1 pack=$2 url=$3 file=${4:-}
need_file "$image" portrait; need_pack "$pack"
case "$url" in rtmp://*|rtmps://*) ;; *) die "'$url' is not an rtmp:// URL" ;; esac
size=${DAWN_SIZE:-1280x720}
[[ "$size" =~ ^[0-9]+x[0-9]+$ ]] || die "DAWN_SIZE '$size' is not WIDTHxHEIGHT"
w=${size%x*} h=${size#*x}
setup_env
need_elements x264enc h264parse flvmux rtmp2sink voaacenc aacparse
if [ -n "$file" ]; then
  need_file "$file" "speech file"
  # A file is played at real-time speed so the stream is live.
  src="filesrc location=\"$file\" ! decodebin ! identity sync=true"
else
  src="${DAWN_AUDIO_SRC:-autoaudiosrc}"
fi
sink="${DAWN_VIDEO_SINK:-rtmp2sink location=\"$url\"}"
# Video branch: the avatar. Audio branch: the source's own sound (full band, its channels),
# teed before the conversion to the avatar's 16 kHz mono; the element's audio_src pad would
# carry that 16 kHz mono audio instead. The audio queue must be unbounded: the muxer waits for
# video, which starts a chunk of audio after the sound does, and a bounded queue would fill
# and block the tee (see docs/element.md, "The tee form").
avatar="audioconvert ! audioresample ! audio/x-raw,rate=16000,channels=1 ! \
  dawnavatar image=\"$image\" model-path=\"$pack\" output=portrait output-width=$w \
  output-height=$h ${DAWN_PROPS:-}"
audio_out="audioconvert ! audioresample ! audio/x-raw,rate=48000,channels=2 ! \
  voaacenc bitrate=128000 ! aacparse ! mux."
eval gst-launch-1.0 -e \
  "$src" ! tee name=t \
  t. ! queue ! "$avatar" ! \
    videoconvert ! videoscale ! video/x-raw,format=I420,width=$w,height=$h,pixel-aspect-ratio=1/1 ! \
    x264enc tune=zerolatency speed-preset=veryfast key-int-max=50 bitrate=2500 ! \
    video/x-h264,profile=constrained-baseline ! h264parse ! queue ! \
    flvmux name=mux streamable=true ! "$sink" \
  t. ! queue max-size-time=0 max-size-buffers=0 max-size-bytes=0 ! "$audio_out"
