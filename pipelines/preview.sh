#!/usr/bin/env bash
# Preview window: speech (file, or the microphone) → avatar on screen, with the sound.
#   pipelines/preview.sh PORTRAIT PACK [SPEECH_FILE]
# The sound comes from the element's audio_src pad (the audio it animates, 16 kHz mono),
# released as the video covers it, so it plays in sync with no tee and no queue sizing.
set -euo pipefail
source "$(dirname "$0")/common.sh"
[ $# -ge 2 ] || die "usage: $0 PORTRAIT PACK [SPEECH_FILE]"
image=$1 pack=$2 file=${3:-}
need_file "$image" portrait; need_pack "$pack"
setup_env
if [ -n "$file" ]; then
  need_file "$file" "speech file"
  src="filesrc location=\"$file\" ! decodebin"
else
  src="${DAWN_AUDIO_SRC:-autoaudiosrc}"
fi
sink="${DAWN_VIDEO_SINK:-autovideosink}"
eval gst-launch-1.0 -e \
  "$src" ! audioconvert ! audioresample ! audio/x-raw,rate=16000,channels=1 ! \
    dawnavatar name=avatar image="\"$image\"" model-path="\"$pack\"" ${DAWN_PROPS:-} ! \
    videoconvert ! videoscale ! video/x-raw,width=512,height=512 ! "$sink" \
  avatar.audio_src ! queue ! audioconvert ! audioresample ! "${DAWN_AUDIO_SINK:-autoaudiosink}"
