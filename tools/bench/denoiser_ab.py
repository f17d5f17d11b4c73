#!/usr/bin/env python3
"""A/B timing of two denoiser.onnx graphs, interleaved in one process.

Both graphs are loaded in ONNX Runtime CPU sessions configured as the engine configures its
sessions (default intra-op threads, ORT_ENABLE_ALL, ``session.intra_op.allow_spinning = 0``) and
run alternately (A, B, A, B, ...) on identical random inputs, so that load from other processes
hits both about equally. Prints per-call medians, the ratio B/A and the parity of B against A.

    python tools/bench/denoiser_ab.py OLD/denoiser.onnx NEW/denoiser.onnx --frames 110,55 --rounds 4

``--profile DIR`` instead writes an ORT profile of one call of each graph and prints the time
per op type and per node-name prefix (needs no torch; numpy + onnxruntime only).
"""

import argparse
import collections
import json
import os
import statistics
import sys
import time

import numpy as np


def make_session(path, threads=0, profile_prefix=None):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        so.intra_op_num_threads = threads
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if profile_prefix:
        so.enable_profiling = True
        so.profile_file_prefix = profile_prefix
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def _dims(sess):
    return {i.name: i.shape for i in sess.get_inputs()}


def make_inputs(sess, frames, seed=0):
    """Random inputs at the graph's real shape, with F = frames (x_t, static, timestep, cond)."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for name, shape in _dims(sess).items():
        shp = [frames if isinstance(d, str) or d is None else int(d) for d in shape]
        if name == "timestep":
            feeds[name] = np.array([523.0], np.float32)
        elif name == "cond":
            c = rng.standard_normal(shp).astype(np.float32)
            c[..., 1024:1027] *= 0.3
            c[..., 1027:1030] *= 1e-5
            c[..., 1030:] *= 0.05
            feeds[name] = c
        else:
            feeds[name] = rng.standard_normal(shp).astype(np.float32)
    return feeds


def parity(a, b):
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    mab = float(np.max(np.abs(a - b)))
    return mab, mab / max(float(np.max(np.abs(a))), 1e-30)


def ab(path_a, path_b, frames, rounds, threads=0, seed=0):
    sa, sb = make_session(path_a, threads), make_session(path_b, threads)
    results = []
    for f in frames:
        feeds = make_inputs(sa, f, seed)
        ta, tb = [], []
        # warm-up (first run allocates arenas / picks kernels)
        ya = sa.run(None, feeds)[0]
        yb = sb.run(None, feeds)[0]
        mab, rel = parity(ya, yb)
        for r in range(rounds):
            for sess, acc in ((sa, ta), (sb, tb)) if r % 2 == 0 else ((sb, tb), (sa, ta)):
                t0 = time.perf_counter()
                sess.run(None, feeds)
                acc.append(time.perf_counter() - t0)
        ma, mb = statistics.median(ta), statistics.median(tb)
        row = {"frames": f, "a_ms": ma * 1e3, "b_ms": mb * 1e3, "ratio_b_over_a": mb / ma,
               "a_min_ms": min(ta) * 1e3, "b_min_ms": min(tb) * 1e3,
               "a_runs_ms": [round(t * 1e3, 1) for t in ta], "b_runs_ms": [round(t * 1e3, 1) for t in tb],
               "max_abs_err": mab, "rel_err": rel}
        print(f"F={f:4d}  A {ma * 1e3:9.1f} ms  B {mb * 1e3:9.1f} ms  B/A {mb / ma:.3f}  "
              f"min ratio {min(tb) / min(ta):.3f}  (A runs {row['a_runs_ms']}, B runs {row['b_runs_ms']})  parity: max abs {mab:.2e}, "
              f"rel {rel:.2e}", flush=True)
        results.append(row)
    return results


def profile(path, frames, out_dir, tag, threads=0, top=40):
    os.makedirs(out_dir, exist_ok=True)
    sess = make_session(path, threads, profile_prefix=os.path.join(out_dir, tag))
    feeds = make_inputs(sess, frames)
    sess.run(None, feeds)  # warm-up (also profiled; skipped below by taking the last run)
    sess.run(None, feeds)
    prof = sess.end_profiling()
    with open(prof) as fh:
        events = json.load(fh)
    runs = [e for e in events if e.get("name") == "model_run"]
    last = runs[-1]
    t0, t1 = last["ts"], last["ts"] + last["dur"]
    by_op, by_prefix = collections.Counter(), collections.Counter()
    total = 0
    for e in events:
        if e.get("cat") != "Node" or not e["name"].endswith("_kernel_time"):
            continue
        if not (t0 <= e["ts"] <= t1):
            continue
        d = e["dur"]
        total += d
        by_op[e["args"].get("op_name", "?")] += d
        name = e["name"][: -len("_kernel_time")].lstrip("/")
        parts = name.split("/")
        by_prefix["/".join(parts[:3]) if len(parts) > 2 else parts[0]] += d
    print(f"{tag}: F={frames} model_run {last['dur'] / 1e3:.1f} ms, node time {total / 1e3:.1f} ms")
    for k, v in by_op.most_common(top):
        print(f"  op     {k:28s} {v / 1e3:9.1f} ms {100 * v / total:5.1f} %")
    for k, v in by_prefix.most_common(top):
        print(f"  prefix {k:60s} {v / 1e3:9.1f} ms {100 * v / total:5.1f} %")
    return prof


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("a", help="baseline denoiser.onnx (A)")
    p.add_argument("b", nargs="?", help="candidate denoiser.onnx (B)")
    p.add_argument("--frames", default="110,55", help="frame counts F (default 110,55)")
    p.add_argument("--rounds", type=int, default=4, help="timed runs per graph and F (default 4)")
    p.add_argument("--threads", type=int, default=0, help="intra-op threads (default: ORT's default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="write the results here")
    p.add_argument("--profile", metavar="DIR", help="write and summarise an ORT profile of each graph")
    args = p.parse_args(argv)
    frames = [int(v) for v in args.frames.split(",") if v.strip()]
    if args.profile:
        for tag, path in (("a", args.a), ("b", args.b)):
            if path:
                for f in frames:
                    profile(path, f, args.profile, f"{tag}_F{f}", args.threads)
        return 0
    if not args.b:
        p.error("need two graphs (or --profile)")
    res = ab(args.a, args.b, frames, args.rounds, args.threads, args.seed)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"a": args.a, "b": args.b, "results": res}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
