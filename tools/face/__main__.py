"""python -m tools.face --checkpoint mb05_120x120.pth --out DIR [--reference ONNX] [--face IMG:X,Y,W,H]..."""

import sys

from .cli import parse_args


def main(argv=None):
    args = parse_args(argv)
    try:
        from . import convert  # torch, onnx, onnxruntime, pillow from here on
    except ImportError as e:
        print(f"error: the face-graph converter needs torch, onnx, onnxruntime, numpy and pillow "
              f"({e}); use the exporter's environment (docs/exporter.md)", file=sys.stderr)
        return 2
    return convert.run(args)


if __name__ == "__main__":
    sys.exit(main())
