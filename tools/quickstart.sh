#!/usr/bin/env bash
# One command from a fresh machine to a talking-head video:
# installs what is needed (tools/setup.sh), builds the plugin, and renders
# a portrait + a speech recording into out/talking-head.mp4.
#
#   tools/quickstart.sh [--model PACK] [--image PORTRAIT] [--audio SPEECH] [--out FILE] [--gpu]
#
# Without --model it uses the bundled tiny test pack, whose weights are UNTRAINED: the face
# moves with the audio, but it is not a real talking head. Export a real pack first
# (docs/exporter.md) and pass --model to get one.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
model="" image="$root/tests/data/mpl_grace_hopper.jpg" audio="$root/tests/data/speech_orig_16k.wav"
out="$root/out/talking-head.mp4" gpu=""
while [ $# -gt 0 ]; do
  case "$1" in
    --model) model=$2; shift 2 ;;
    --image) image=$2; shift 2 ;;
    --audio) audio=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --gpu) gpu=--gpu; shift ;;
    -h|--help) sed -n 2,11p "$0"; exit 0 ;;
    *) echo "quickstart: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
bash "$root/tools/setup.sh" $gpu
cd "$root"
echo "[quickstart] building (release)"
cargo build --release --quiet --lib --example render
if [ -z "$model" ]; then
  model="$root/tests/models/tiny128"
  echo "[quickstart] no --model given: using the bundled tiny test pack (UNTRAINED weights: the"
  echo "[quickstart] portrait moves with the speech but this is not a real talking head;"
  echo "[quickstart] see docs/exporter.md to export the real DAWN pack)"
fi
mkdir -p "$(dirname "$out")"
./target/release/examples/render --image "$image" --audio "$audio" --model "$model" --out "$out"
echo "[quickstart] done: $out (play it with: ffplay $out, or any video player)"
