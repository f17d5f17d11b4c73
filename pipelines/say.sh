#!/usr/bin/env bash
# Text to avatar: espeak-ng speaks TEXT and the avatar says it.
#   pipelines/say.sh "TEXT" PORTRAIT PACK [OUT.mp4]
# With OUT.mp4 the clip is rendered (pipelines/render-file.sh: H.264 + AAC, in sync, the
# speech at espeak-ng's own 22.05 kHz); without it, it plays in a window with the sound
# (pipelines/preview.sh). DAWN_VOICE picks an espeak-ng voice (espeak-ng --voices lists them,
# e.g. en-us, de, fr). Any other TTS that writes a WAV file works the same way; to feed a
# running pipeline as speech is synthesised, see docs/tts.md.
set -euo pipefail
here=$(dirname "$0")
source "$here/common.sh"
[ $# -ge 3 ] || die "usage: $0 \"TEXT\" PORTRAIT PACK [OUT.mp4]"
text=$1 image=$2 pack=$3 out=${4:-}
[ -n "${text//[[:space:]]/}" ] || die "TEXT is empty"
need_file "$image" portrait; need_pack "$pack"
command -v espeak-ng >/dev/null || die "espeak-ng missing; run tools/setup.sh (apt install espeak-ng)"
wav=$(mktemp --suffix=.wav)
trap 'rm -f "$wav"' EXIT
# The text goes through stdin so that nothing in it is taken for an option.
printf '%s\n' "$text" | espeak-ng ${DAWN_VOICE:+-v "$DAWN_VOICE"} --stdin -w "$wav" ||
  die "espeak-ng could not speak the text (voice '${DAWN_VOICE:-default}')"
if [ -n "$out" ]; then
  "$here/render-file.sh" "$image" "$wav" "$pack" "$out"
else
  "$here/preview.sh" "$image" "$pack" "$wav"
fi
