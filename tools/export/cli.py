"""Command line of the exporter: argument parsing and checks. Torch-free."""

import argparse
import os

from . import TOOL
from . import contract as C


class UsageError(Exception):
    pass


def build_parser():
    p = argparse.ArgumentParser(
        prog="python -m tools.export",
        description="Export the DAWN PyTorch checkpoints to a gst-dawn model pack "
                    "(docs/model-pack.md), verified against PyTorch.",
        epilog="See docs/exporter.md for where to get the checkpoints.")
    p.add_argument("--dawn-src", required=True, metavar="DIR",
                   help="checkout of Hanbo-Cheng/DAWN-pytorch (its classes are imported from here)")
    p.add_argument("--checkpoints", metavar="DIR",
                   help="folder with DAWN_<res>.pth, LFG_<res>_*.pth, pbnet/{pose,blink}/ (hf download Hanbo-Cheng/DAWN)")
    p.add_argument("--hubert", metavar="DIR", help="local copy of facebook/hubert-large-ls960-ft")
    p.add_argument("--resolution", type=int, required=True, choices=C.EXPORT_RESOLUTIONS)
    p.add_argument("--out", required=True, metavar="PACK", help="pack directory to write")
    p.add_argument("--fp16", action="store_true",
                   help="fp16 inside the graphs (I/O stays float32); PBNet stays fp32")
    p.add_argument("--random-weights", action="store_true",
                   help="no checkpoints: default-initialised networks (tests and timing only)")
    p.add_argument("--seed", type=int, default=0, help="seed of random weights and verification inputs")
    p.add_argument("--attention", choices=("dense", "banded"), default="dense",
                   help="denoiser temporal attention: dense with in-graph band mask, or exact "
                        "block-banded (linear memory in F)")
    p.add_argument("--band-block", type=int, default=40, metavar="B",
                   help="query block size of --attention banded (default 40)")
    p.add_argument("--allow-unsafe-unpickling", action="store_true",
                   help="load checkpoints that pickle Python objects besides tensors (runs code "
                        "from the file: only for files you trust; the released ones never need it)")
    p.add_argument("--no-verify", action="store_true", help="skip the PyTorch/ONNX Runtime parity check")
    p.add_argument("--verify-frames", default="1,7,24,40,48", metavar="LIST",
                   help="denoiser frame counts to verify (default 1,7,24,40,48; > 41 exercises "
                        "the band mask)")
    p.add_argument("--threads", type=int, default=max(1, min(os.cpu_count() or 1, 8)),
                   help="CPU threads for torch and onnxruntime")
    p.add_argument("--force", action="store_true", help="write into a non-empty --out")
    p.add_argument("--only", metavar="ROLES",
                   help="debugging: export only these comma-separated graph roles (no manifest)")
    p.add_argument("--version", action="version", version=TOOL)
    return p


def _int_list(text, what):
    try:
        vals = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UsageError(f"{what}: expected comma-separated integers, got {text!r}")
    if not vals or any(v < 1 for v in vals):
        raise UsageError(f"{what}: values must be >= 1, got {text!r}")
    return vals


def check_args(args):
    """Normalise and check parsed arguments; raises UsageError with every problem found."""
    problems = []
    if not os.path.isdir(args.dawn_src):
        problems.append(f"--dawn-src {args.dawn_src}: not a directory")
    else:
        for sub in ("DM_3", "LFG", "PBnet", "config"):
            if not os.path.isdir(os.path.join(args.dawn_src, sub)):
                problems.append(f"--dawn-src {args.dawn_src}: no {sub}/ (is this a DAWN-pytorch checkout?)")
    if args.random_weights:
        for opt in ("checkpoints", "hubert", "allow_unsafe_unpickling"):
            if getattr(args, opt):
                problems.append(f"--{opt.replace('_', '-')} cannot be combined with --random-weights")
    else:
        if not args.checkpoints:
            problems.append("--checkpoints DIR is required (or --random-weights)")
        elif not os.path.isdir(args.checkpoints):
            problems.append(f"--checkpoints {args.checkpoints}: not a directory")
        if not args.hubert:
            problems.append("--hubert DIR is required (or --random-weights)")
        elif not os.path.isdir(args.hubert):
            problems.append(f"--hubert {args.hubert}: not a directory")
    if args.band_block < 1:
        problems.append("--band-block must be >= 1")
    if args.band_block != 40 and args.attention != "banded":
        problems.append("--band-block only applies to --attention banded")
    if args.threads < 1:
        problems.append("--threads must be >= 1")
    try:
        args.verify_frames = _int_list(args.verify_frames, "--verify-frames")
    except UsageError as e:
        problems.append(str(e))
    if args.only:
        roles = [r.strip() for r in args.only.split(",") if r.strip()]
        bad = [r for r in roles if r not in C.ROLES]
        if bad:
            problems.append(f"--only: unknown roles {bad}; known: {', '.join(C.ROLES)}")
        args.only = roles
    else:
        args.only = None
    if os.path.exists(args.out):
        if not os.path.isdir(args.out):
            problems.append(f"--out {args.out}: exists and is not a directory")
        elif os.listdir(args.out) and not args.force and not args.only:
            problems.append(f"--out {args.out}: directory is not empty (use --force to overwrite)")
    if problems:
        raise UsageError("\n".join(problems))
    return args


def parse_args(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return check_args(args)
    except UsageError as e:
        parser.error(str(e))
