"""Model packs without their weights, for transport, and weights refilled where they run.

A random-weight pack of the real architecture is hundreds of MB (the audio encoder alone 0.6 to
1.2 GB), far more than one call to the GPU machine can carry, while its graphs are a few MB and
its timing does not depend on the weights' values. `strip` keeps every graph with its small
and non-float tensors verbatim and replaces each large float tensor (an initializer, or the
value of a Constant node, which the exporter's folded attention weights are) by a record: name,
shape, type, mean and standard deviation, seed. `fill` rebuilds each graph with seeded normal
values of the recorded mean and deviation, so activations keep the magnitudes of the original
random pack (fp16 graphs stay finite).

Graphs that are byte-identical across packs (the same audio encoder at 128 and 256) are stored
once.

    python3 tools/gpu-check/weights.py strip --out STORE PACK [PACK...]
    python3 tools/gpu-check/weights.py fill STORE --out DIR [--packs NAME,...]

STORE holds `packs.json` (pack name -> its files, each graph by content hash), `graphs/` and the
packs' other files verbatim. `fill` writes DIR/NAME/ for every pack: a complete model pack.
Needs onnx and numpy.
"""

import argparse
import hashlib
import json
import os
import shutil
import sys

import numpy as np
import onnx
from onnx import numpy_helper

# Float tensors with fewer elements are kept as they are: scales, epsilons, shape arithmetic.
MIN_ELEMENTS = 256
FLOAT_TYPES = {
    onnx.TensorProto.FLOAT: np.float32,
    onnx.TensorProto.FLOAT16: np.float16,
    onnx.TensorProto.DOUBLE: np.float64,
}


def _is_weight(t):
    return t.data_type in FLOAT_TYPES and int(np.prod(t.dims, dtype=np.int64)) >= MIN_ELEMENTS


def _record(t, seed):
    arr = numpy_helper.to_array(t).astype(np.float64)
    if not np.all(np.isfinite(arr)):
        return None  # masks with -inf and the like stay verbatim
    return {
        "name": t.name,
        "dims": [int(d) for d in t.dims],
        "data_type": int(t.data_type),
        "mean": float(arr.mean()),
        "std": float(arr.std()),
        "seed": seed,
    }


def strip_model(model):
    """Removes the weights from `model` in place; returns their records."""
    g = model.graph
    records = []
    # Large Constant nodes become initializers of the same name (equivalent for ONNX Runtime),
    # so one mechanism covers both.
    keep_nodes = []
    for node in g.node:
        value = None
        if node.op_type == "Constant" and len(node.attribute) == 1 and node.attribute[0].name == "value":
            value = node.attribute[0].t
        if value is not None and _is_weight(value):
            t = onnx.TensorProto()
            t.CopyFrom(value)
            t.name = node.output[0]
            g.initializer.append(t)
        else:
            keep_nodes.append(node)
    if len(keep_nodes) != len(g.node):
        del g.node[:]
        g.node.extend(keep_nodes)
    kept = []
    for t in g.initializer:
        rec = _record(t, len(records)) if _is_weight(t) else None
        if rec is None:
            kept.append(t)
        else:
            records.append(rec)
    del g.initializer[:]
    g.initializer.extend(kept)
    return records


def fill_model(model, records, seed_base=0):
    """Adds seeded normal weights for `records` to `model` in place."""
    for r in records:
        rng = np.random.default_rng([seed_base, r["seed"]])
        n = int(np.prod(r["dims"], dtype=np.int64))
        values = rng.standard_normal(n, dtype=np.float32)
        values *= np.float32(r["std"])
        values += np.float32(r["mean"])
        dtype = FLOAT_TYPES[r["data_type"]]
        t = numpy_helper.from_array(values.astype(dtype).reshape(r["dims"]), name=r["name"])
        model.graph.initializer.append(t)


def _sha256(data):
    return hashlib.sha256(data).hexdigest()


def strip_packs(packs, out):
    os.makedirs(os.path.join(out, "graphs"), exist_ok=True)
    index = {}
    for pack in packs:
        name = os.path.basename(os.path.normpath(pack))
        if name in index:
            raise SystemExit(f"weights: two packs named {name}; give them distinct directory names")
        files = {}
        for f in sorted(os.listdir(pack)):
            src = os.path.join(pack, f)
            if not os.path.isfile(src):
                continue
            if f.endswith(".onnx"):
                model = onnx.load(src)
                records = strip_model(model)
                graph = model.SerializeToString()
                spec = json.dumps(records, sort_keys=True).encode()
                key = _sha256(graph + spec)
                base = os.path.join(out, "graphs", key)
                if not os.path.exists(base + ".onnx"):
                    with open(base + ".onnx", "wb") as fh:
                        fh.write(graph)
                    with open(base + ".json", "wb") as fh:
                        fh.write(spec)
                files[f] = {"graph": key, "weights": len(records)}
            else:
                dst_dir = os.path.join(out, "files", name)
                os.makedirs(dst_dir, exist_ok=True)
                shutil.copyfile(src, os.path.join(dst_dir, f))
                files[f] = {"copy": f"files/{name}/{f}"}
        index[name] = files
    with open(os.path.join(out, "packs.json"), "w") as fh:
        json.dump(index, fh, indent=1, sort_keys=True)
    return index


def fill_packs(store, out, names=None):
    with open(os.path.join(store, "packs.json")) as fh:
        index = json.load(fh)
    names = names or sorted(index)
    unknown = [n for n in names if n not in index]
    if unknown:
        raise SystemExit(f"weights: {store} has no pack {', '.join(unknown)} (it has {', '.join(sorted(index))})")
    built = {}
    for name in names:
        dst = os.path.join(out, name)
        os.makedirs(dst, exist_ok=True)
        for f, entry in index[name].items():
            target = os.path.join(dst, f)
            if os.path.exists(target):
                os.remove(target)
            if "copy" in entry:
                shutil.copyfile(os.path.join(store, entry["copy"]), target)
                continue
            key = entry["graph"]
            if key in built:
                os.link(built[key], target)  # same graph: same weights, stored once
                continue
            model = onnx.load(os.path.join(store, "graphs", key + ".onnx"))
            with open(os.path.join(store, "graphs", key + ".json")) as fh:
                fill_model(model, json.load(fh))
            onnx.save(model, target)
            built[key] = target
        print(f"weights: {dst} ({len(index[name])} files)", flush=True)
    return [os.path.join(out, n) for n in names]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("strip", help="packs -> weightless store")
    s.add_argument("packs", nargs="+")
    s.add_argument("--out", required=True)
    f = sub.add_parser("fill", help="weightless store -> packs with seeded random weights")
    f.add_argument("store")
    f.add_argument("--out", required=True)
    f.add_argument("--packs", help="comma-separated pack names (default: all)")
    a = p.parse_args(argv)
    if a.cmd == "strip":
        for pack in a.packs:
            if not os.path.isfile(os.path.join(pack, "manifest.json")):
                p.error(f"{pack}: no manifest.json (not a model pack)")
        index = strip_packs(a.packs, a.out)
        print(f"weights: {len(index)} packs -> {a.out}")
    else:
        fill_packs(a.store, a.out, a.packs.split(",") if a.packs else None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
