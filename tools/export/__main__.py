"""python -m tools.export --dawn-src DIR (--checkpoints DIR --hubert DIR | --random-weights)
    --resolution 128|256 --out PACK [--fp16] [--attention dense|banded] [--no-verify] ..."""

import sys

from .checkpoints import CheckpointError, precheck
from .cli import parse_args

DEPENDENCIES = ("torch, transformers, onnx, onnxruntime, einops, einops-exts, "
                "rotary-embedding-torch and pyyaml")


def main(argv=None):
    args = parse_args(argv)
    try:
        if not args.random_weights:
            precheck(args)  # the checkpoint files first: a missing one stops us before torch
        from . import pipeline  # torch, onnx, onnxruntime from here on

        return pipeline.run(args)
    except ImportError as e:
        print(f"error: the exporter needs {DEPENDENCIES} ({e}): pip install -e '.[export]' "
              f"(docs/exporter.md)", file=sys.stderr)
        return 2
    except CheckpointError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
