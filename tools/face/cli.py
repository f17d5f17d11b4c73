"""Command line of the face-graph converter: argument parsing and file checks. Torch-free."""

import argparse
import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GRAPH_NAME = "tddfa_v2_mb05_120x120.onnx"
MEAN_STD_NAME = "tddfa_param_mean_std_62.json"
SHIPPED_GRAPH = os.path.join(ROOT, "models", "face", GRAPH_NAME)
SHIPPED_MEAN_STD = os.path.join(ROOT, "models", "face", MEAN_STD_NAME)

# Real faces for the check: the test photos with the face box YuNet finds in them (x, y, w, h in
# pixels, rounded; tests/portrait.rs prints the same boxes).
DEFAULT_FACES = (
    os.path.join(ROOT, "tests", "data", "mpl_grace_hopper.jpg") + ":183,120,170,213",
    os.path.join(ROOT, "tests", "data", "skimage_astronaut.png") + ":178,63,90,113",
)


class UsageError(Exception):
    pass


def build_parser():
    p = argparse.ArgumentParser(
        prog="python -m tools.face",
        description="Convert the 3DDFA_V2 MobileNet-0.5 checkpoint (mb05_120x120.pth) to the "
                    "ONNX graph gst-dawn uses (outputs param [N,62] and lm_aux [N,136]) and "
                    "compare it with the shipped graph.",
        epilog="See docs/portrait.md, section 'The face models'.")
    p.add_argument("--checkpoint", required=True, metavar="PTH",
                   help="mb05_120x120.pth (DAWN-pytorch: extract_init_states/weights/)")
    p.add_argument("--out", required=True, metavar="DIR",
                   help=f"directory to write {GRAPH_NAME} into (created if missing)")
    p.add_argument("--reference", default=SHIPPED_GRAPH, metavar="ONNX",
                   help="graph to compare with (default: the project's models/face/)")
    p.add_argument("--mean-std", default=SHIPPED_MEAN_STD, metavar="JSON",
                   help="param de-normalisation, for the yaw printed per face "
                        "(default: the project's models/face/)")
    p.add_argument("--face", action="append", metavar="IMAGE:X,Y,W,H",
                   help="a photo and a face box in it, for the real-face check (repeatable; "
                        "default: the two test photos)")
    p.add_argument("--random", type=int, default=8, metavar="N",
                   help="random inputs in the check (default 8)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random inputs")
    p.add_argument("--tolerance", type=float, default=1e-4,
                   help="largest max-abs difference accepted per output (default 1e-4)")
    p.add_argument("--force", action="store_true", help=f"overwrite an existing {GRAPH_NAME}")
    return p


def parse_face(text):
    """'photo.jpg:x,y,w,h' -> (path, (x, y, w, h))."""
    path, sep, box = text.rpartition(":")
    try:
        vals = tuple(float(v) for v in box.split(","))
    except ValueError:
        vals = ()
    if not sep or not path or len(vals) != 4 or vals[2] <= 0 or vals[3] <= 0:
        raise UsageError(f"--face {text!r}: expected IMAGE:X,Y,W,H with a positive width and height")
    if not os.path.isfile(path):
        raise UsageError(f"--face: image {path} not found")
    return path, vals


def check_args(args):
    """Validates the arguments; returns the list of (image, box) faces. Raises UsageError."""
    if not os.path.isfile(args.checkpoint):
        raise UsageError(f"--checkpoint {args.checkpoint} not found; it is "
                         "extract_init_states/weights/mb05_120x120.pth in a DAWN-pytorch checkout "
                         "(or weights/mb05_120x120.pth in 3DDFA_V2)")
    for flag, path in (("--reference", args.reference), ("--mean-std", args.mean_std)):
        if not os.path.isfile(path):
            raise UsageError(f"{flag} {path} not found")
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise UsageError(f"--out {args.out} exists and is not a directory")
    target = os.path.join(args.out, GRAPH_NAME)
    if os.path.exists(target) and not args.force:
        raise UsageError(f"{target} exists; pass --force to overwrite it")
    if os.path.abspath(target) == os.path.abspath(args.reference):
        raise UsageError(f"--out would overwrite the reference {args.reference}; write elsewhere "
                         "and compare first")
    if args.random < 1:
        raise UsageError("--random must be at least 1")
    if not args.tolerance > 0:
        raise UsageError("--tolerance must be positive")
    return [parse_face(f) for f in (args.face or DEFAULT_FACES)]


def parse_args(argv=None):
    """Parses and checks; on a usage error prints it and exits with status 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.faces = check_args(args)
    except UsageError as e:
        parser.error(str(e))
    return args
