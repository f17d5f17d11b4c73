"""Checkpoint -> ONNX, then the comparison with the shipped graph. Needs torch, onnx,
onnxruntime, numpy and pillow."""

import json
import math
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
import torch
from PIL import Image

from . import mobilenet
from .cli import GRAPH_NAME

SIZE = 120
OPSET = 11  # what the shipped graph uses; ONNX Runtime 1.31 reads IR <= 13 only
IR_VERSION = 6
DOC = ("3DDFA_V2 MobileNet-V1 x0.5 (weights/mb05_120x120.pth, MIT, cleardusk/3DDFA_V2), "
       "converted by gst-dawn tools/face. input: BGR 120x120 ROI crop, (px-127.5)/128. "
       "param [N,62]: p*std+mean (tddfa_param_mean_std_62.json) = 12 camera (3x4 row-major), "
       "40 shape, 10 expression. lm_aux [N,136]: 68 landmarks x0..x67, y0..y67 in [-1,1] "
       "over the ROI.")


def export(model, path):
    """Writes the graph: input 'input' [N,3,120,120], outputs 'param' and 'lm_aux'."""
    example = torch.zeros(1, 3, SIZE, SIZE)
    tmp = path + ".tmp"
    torch.onnx.export(model, (example,), tmp, dynamo=False, opset_version=OPSET,
                      input_names=["input"], output_names=["param", "lm_aux"],
                      dynamic_axes={"input": {0: "N"}, "param": {0: "N"}, "lm_aux": {0: "N"}},
                      do_constant_folding=True)
    graph = onnx.load(tmp)
    graph.ir_version = IR_VERSION
    graph.producer_name = "gst-dawn tools/face"
    graph.doc_string = DOC
    onnx.checker.check_model(graph)
    onnx.save(graph, path)
    os.remove(tmp)


def roi_crop(path, box):
    """3DDFA's input for a face box: a square of side int(1.58·(w+h)/2) centred on the box centre
    moved down by 0.14·(w+h)/2, zero outside the image, resized to 120×120 (bilinear that averages
    when shrinking, as the plugin does), BGR, (px − 127.5)/128. Returns [3, 120, 120] float32."""
    x, y, w, h = box
    half = (w + h) / 2
    side = math.trunc(half * 1.58)
    cx, cy = x + w / 2, y + h / 2 + 0.14 * half
    sx, sy = round(cx - side / 2), round(cy - side / 2)
    with Image.open(path) as im:
        crop = im.convert("RGB").crop((sx, sy, sx + side, sy + side))  # zero-padded outside
    rgb = np.asarray(crop.resize((SIZE, SIZE), Image.BILINEAR), dtype=np.float32)
    return ((rgb[..., ::-1] - 127.5) / 128.0).transpose(2, 0, 1).copy()


def yaw_degrees(param, mean_std):
    """Yaw of the de-normalised camera matrix (asin of R[2,0], R the row-normalised 3×3 part)."""
    p = param * mean_std["std"] + mean_std["mean"]
    r = p[:12].reshape(3, 4)[:, :3]
    r0, r1 = r[0] / np.linalg.norm(r[0]), r[1] / np.linalg.norm(r[1])
    r2 = np.cross(r0, r1)
    return math.degrees(math.asin(max(-1.0, min(1.0, float(r2[0])))))


def run_onnx(path, x):
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    missing = {"param", "lm_aux"} - set(names)
    if missing:
        raise SystemExit(f"error: {path} lacks output(s) {sorted(missing)}")
    param, lm = sess.run(["param", "lm_aux"], {"input": x})
    return {"param": param, "lm_aux": lm}


def max_diffs(a, b):
    return {k: float(np.abs(a[k] - b[k]).max()) for k in ("param", "lm_aux")}


def run(args):
    torch.manual_seed(args.seed)
    model = mobilenet.load(args.checkpoint)
    os.makedirs(args.out, exist_ok=True)
    out = os.path.join(args.out, GRAPH_NAME)
    export(model, out)
    print(f"wrote {out} ({os.path.getsize(out) / 2**20:.2f} MiB, opset {OPSET}, IR {IR_VERSION})")
    with open(args.mean_std) as f:
        mean_std = {k: np.asarray(v, np.float32) for k, v in json.load(f).items()}

    rng = np.random.default_rng(args.seed)
    inputs = [("random", rng.uniform(-1, 1, (args.random, 3, SIZE, SIZE)).astype(np.float32))]
    inputs += [(f"{os.path.basename(p)} box {box}", roi_crop(p, box)[None]) for p, box in args.faces]

    worst = 0.0
    print(f"max |difference| (ours vs {args.reference}; ours vs PyTorch):")
    for name, x in inputs:
        with torch.no_grad():
            p, lm = model(torch.from_numpy(x))
        torch_out = {"param": p.numpy(), "lm_aux": lm.numpy()}
        ours, ref = run_onnx(out, x), run_onnx(args.reference, x)
        vs_ref, vs_torch = max_diffs(ours, ref), max_diffs(ours, torch_out)
        worst = max(worst, *vs_ref.values())
        line = "  ".join(f"{k} {vs_ref[k]:.2e}; {vs_torch[k]:.2e}" for k in vs_ref)
        print(f"  {name} [N={x.shape[0]}]: {line}")
        if name != "random":
            print(f"    yaw: ours {yaw_degrees(ours['param'][0], mean_std):+.2f}°, "
                  f"reference {yaw_degrees(ref['param'][0], mean_std):+.2f}°")
    if worst > args.tolerance:
        print(f"error: the graphs differ by {worst:.2e} > --tolerance {args.tolerance:g}",
              file=sys.stderr)
        return 1
    print(f"ok: largest difference {worst:.2e} <= {args.tolerance:g}")
    return 0
