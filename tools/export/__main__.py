"""python -m tools.export --dawn-src DIR (--checkpoints DIR --hubert DIR | --random-weights)
    --resolution 128|256 --out PACK [--fp16] [--attention dense|banded] [--no-verify] ..."""

import sys

from .checkpoints import CheckpointError
from .cli import parse_args


def main(argv=None):
    args = parse_args(argv)
    try:
        from . import pipeline  # torch, onnx, onnxruntime from here on
    except ImportError as e:
        print(f"error: the exporter needs torch, transformers, onnx, onnxruntime, einops, "
              f"einops-exts, rotary-embedding-torch and pyyaml ({e}); see docs/exporter.md",
              file=sys.stderr)
        return 2
    try:
        return pipeline.run(args)
    except CheckpointError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
