"""Command line of the parity tool (see tools/parity/__init__.py and docs/fidelity.md).

    python -m tools.parity upstream --dawn-src DAWN_SRC --pack PACK \\
        [--checkpoints CK --hubert HUB] [--frames 64] [--extra-samples 0,79,80,399,400,639] \\
        [--steps 3] [--eta 1] [--json FILE]
    python -m tools.parity drift --pack PACK [--frames 270] [--steps 3]

Exit status: 0 when every stage is within its bound, 1 when one is not, 2 for a problem with
the inputs (the message names it and the fix).
"""

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np

from . import compare as K
from . import inputs as I
from . import port as PORT

ROOT = PORT.ROOT
DEFAULT_AUDIO = os.path.join(ROOT, "tests", "data", "speech_orig_16k.wav")
DEFAULT_INIT_POSE = [4.0, -6.0, 2.5, 4.79e-4, 56.5, 64.9]
DEFAULT_INIT_EYE = [0.31, 0.27]


class InputError(Exception):
    """Bad input: exit 2 with this one-line message."""


def build_parser():
    p = argparse.ArgumentParser(prog="python -m tools.parity", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="mode", required=True)
    u = sub.add_parser("upstream", help="upstream DAWN vs the engine, one pass, stage by stage")
    u.add_argument("--dawn-src", required=True, metavar="DIR", help="DAWN-pytorch checkout")
    u.add_argument("--pack", required=True, help="the pack to check")
    u.add_argument("--checkpoints", metavar="DIR",
                   help="the trained checkpoints the pack came from (needed for a trained pack)")
    u.add_argument("--hubert", metavar="DIR", help="local facebook/hubert-large-ls960-ft")
    u.add_argument("--engine", default=PORT.DEFAULT_ENGINE,
                   help="examples/parity binary (cargo build --release --example parity)")
    _common(u, frames=64)
    u.add_argument("--extra-samples", default="0,79,80,399,400,639", metavar="LIST",
                   help="clip lengths 640·frames + each value (default 0,79,80,399,400,639: "
                        "n mod 640 in each alignment range)")
    u.add_argument("--threads", type=int, default=0, help="torch and engine threads (0: default)")
    u.add_argument("--keep", metavar="DIR", help="keep the inputs and the engine's tensors here")
    d = sub.add_parser("drift", help="chunked vs one pass, in the port (no torch needed)")
    d.add_argument("--pack", required=True)
    _common(d, frames=270)
    d.add_argument("--threads", type=int, default=2, help="ONNX Runtime threads")
    return p


def _common(p, frames):
    p.add_argument("--audio", default=DEFAULT_AUDIO, help="mono 16-bit 16 kHz WAV")
    p.add_argument("--image", help="portrait (default tests/data/skimage_astronaut_<S>.png)")
    p.add_argument("--frames", type=int, default=frames, help=f"frames per clip (default {frames})")
    p.add_argument("--steps", type=int, default=3, help="DDIM steps (default 3)")
    p.add_argument("--eta", type=float, default=1.0, help="DDIM eta (default 1)")
    p.add_argument("--seed", type=int, default=1234, help="noise seed")
    p.add_argument("--json", metavar="FILE", help="write every row here")


def read_manifest(pack):
    path = os.path.join(pack, "manifest.json")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise InputError(f"{path}: {e}; --pack must be a model pack folder")


def clip_audio(path, n):
    try:
        audio, rate = I.read_wav16(path)
    except (OSError, ValueError, EOFError) as e:
        raise InputError(f"--audio {path}: {e}")
    if rate != I.SAMPLE_RATE:
        raise InputError(f"--audio {path}: {rate} Hz; resample it to 16 kHz first "
                         f"(ffmpeg -i IN -ar 16000 -ac 1 OUT.wav)")
    if audio.size < n:
        raise InputError(f"--audio {path}: {audio.size} samples, {n} needed; give a longer "
                         f"recording or fewer --frames")
    return audio[:n]


def portrait(path, size):
    """upstream's generate_final_video transform: PIL bilinear Resize((S, S)) + ToTensor."""
    if path is None:
        path = os.path.join(ROOT, "tests", "data", f"skimage_astronaut_{size}.png")
    try:
        from PIL import Image
    except ImportError:
        raise InputError("reading the portrait needs Pillow (pip install -e '.[export]')")
    try:
        img = Image.open(path).convert("RGB").resize((size, size), Image.BILINEAR)
    except OSError as e:
        raise InputError(f"--image {path}: {e}")
    x = np.asarray(img, dtype=np.float32) / 255.0
    return x.transpose(2, 0, 1)[None].copy()


def lengths(frames, extra):
    try:
        vals = [int(v) for v in extra.split(",") if v.strip()]
    except ValueError:
        raise InputError(f"--extra-samples {extra!r}: expected comma-separated integers")
    if frames < 2 or any(not 0 <= v < 640 for v in vals) or not vals:
        raise InputError("--frames must be >= 2 and --extra-samples values in [0, 640)")
    out = [640 * frames + v for v in vals]
    for n in out:
        if I.upstream_frame_count(n) != n // 640:
            raise InputError(f"{n} samples: upstream's int(n / 16000 * 25) gives "
                             f"{I.upstream_frame_count(n)} frames, the port {n // 640}; pick another "
                             f"length (docs/fidelity.md)")
    return out


def run_upstream(args):
    man = read_manifest(args.pack)
    S, s = int(man["resolution"]), int(man["latent_size"])
    prov = man.get("provenance", {})
    PORT.check_engine(args.engine)
    if not os.path.isdir(os.path.join(args.dawn_src, "DM_3")):
        raise InputError(f"--dawn-src {args.dawn_src}: not a DAWN-pytorch checkout (no DM_3/)")
    if prov.get("kind") != "export" or prov.get("weights") not in ("random", "trained"):
        raise InputError(f"{args.pack}: not a pack made by tools/export (provenance kind "
                         f"{prov.get('kind')!r}, weights {prov.get('weights')!r}); upstream cannot "
                         f"run its weights")
    trained = prov.get("weights") == "trained"
    if trained and not (args.checkpoints and args.hubert):
        raise InputError(f"{args.pack} holds trained weights: give --checkpoints and --hubert "
                         f"(the files it was exported from)")
    if not trained and (args.checkpoints or args.hubert):
        raise InputError(f"{args.pack} holds random weights: drop --checkpoints/--hubert")
    ns = lengths(args.frames, args.extra_samples)
    src_img = portrait(args.image, S)
    audio = clip_audio(args.audio, max(ns))
    try:
        from . import upstream as UP
    except ImportError as e:
        raise InputError(f"the upstream side needs torch, transformers and scipy ({e}): "
                         f"pip install -e '.[export]'")
    t0 = time.time()
    up = UP.Upstream(args.dawn_src, S, int((prov.get("exporter") or {}).get("seed", 0)),
                     args.checkpoints, args.hubert, args.threads or None)
    print(f"parity: upstream networks built in {time.time() - t0:.0f} s "
          f"({'trained' if trained else 'random'} weights)", flush=True)
    box = I.default_face_box(S)
    summaries, results = [], []
    work = args.keep or tempfile.mkdtemp(prefix="dawn-parity-")
    for n in ns:
        case = I.make_case(audio[:n], src_img, box, DEFAULT_INIT_POSE, DEFAULT_INIT_EYE,
                           args.steps, args.eta, s, args.seed)
        case.face_mask = up.face_mask(case.bbox_row)
        folder = os.path.join(work, f"n{n}")
        t0 = time.time()
        port, index = PORT.run(args.engine, args.pack, case, folder, args.threads)
        t1 = time.time()
        ups = up.run(case, os.path.join(folder, "upstream"))
        t2 = time.time()
        rows = K.compare(port, ups)
        summaries.append(K.summary_row(n, rows))
        results.append({"samples": n, "rows": rows, "port_s": round(t1 - t0, 1),
                        "upstream_s": round(t2 - t1, 1), "alignment": index["chunks"]})
        print(f"\n{n} samples ({n // 640} frames, n mod 640 = {n % 640}; port {t1 - t0:.0f} s, "
              f"upstream {t2 - t1:.0f} s)\n" + K.table(rows), flush=True)
    print("\n" + K.summary_table(summaries))
    ok = all(s["pass"] for s in summaries)
    print(f"\nparity: {'PASS' if ok else 'FAIL'} (steps {args.steps}, eta {args.eta:g}, "
          f"{len(ns)} lengths)")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"pack": args.pack, "steps": args.steps, "eta": args.eta,
                       "summary": summaries, "clips": results}, f, indent=1)
    return 0 if ok else 1


def run_drift(args):
    man = read_manifest(args.pack)
    S = int(man["resolution"])
    from tools.reference import dawn_ref as ref

    from . import drift as D

    n = 640 * args.frames
    audio = clip_audio(args.audio, n)
    src = portrait(args.image, S) if args.image else _png_portrait(S)
    mask = I.bbox_mask(I.bbox_row(I.default_face_box(S), S), S)
    pack = ref.Pack(args.pack, threads=args.threads, memory_pattern=False)
    t0 = time.time()
    res = D.measure(pack, audio, (src, mask, DEFAULT_INIT_POSE, DEFAULT_INIT_EYE),
                    steps=args.steps, eta=args.eta, seed=args.seed)
    print(f"\ndrift of {args.frames} frames ({args.steps} steps, eta {args.eta:g}, "
          f"{time.time() - t0:.0f} s):")
    print("| chunking | new + context + look-ahead | chunks | final latents: RMS(Δ) / RMS | "
          "audio features: RMS(Δ) / RMS |")
    print("|---|---|---|---|---|")
    for name, r in res.items():
        print(f"| {name} | {r['C']} + {r['L']} + {r['R']} | {r['chunks']} | "
              f"{100 * r['rel_rms']:.1f} % | {100 * r['features_rel_rms']:.1f} % |")
    gap = D.alignment_gap(pack, audio, 64)
    print("\ntwo rows per frame (live) vs DAWN's alignment, one pass of 64 frames:")
    print("| n mod 640 | max |Δ| / max | RMS(Δ) / RMS |")
    print("|---|---|---|")
    for r, (mx, rm) in gap.items():
        print(f"| {r} | {100 * mx:.1f} % | {100 * rm:.1f} % |")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"frames": args.frames, "steps": args.steps, "eta": args.eta, **res,
                       "alignment_gap": gap}, f, indent=1)
    return 0


def _png_portrait(size):
    """The default portrait without Pillow (the drift measurement is torch- and Pillow-free)."""
    from tools.reference import make_golden

    path = os.path.join(ROOT, "tests", "data", f"skimage_astronaut_{size}.png")
    if not os.path.isfile(path):
        raise InputError(f"no default portrait for {size} × {size}: give --image (needs Pillow)")
    return make_golden.portrait_tensor(path, size)


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return run_upstream(args) if args.mode == "upstream" else run_drift(args)
    except (InputError, PORT.PortError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
