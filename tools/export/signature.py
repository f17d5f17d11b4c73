"""Graph signatures of a model pack: input/output names, dims (symbolic axes as strings), dtypes.

Needs the ``onnx`` package (not torch). ``tests/models/signature.json`` holds the signature of a
full-size export; ``normalize_signature`` replaces the resolution-dependent dims and ``Cs`` by
symbols so packs of different resolutions (e.g. the tiny test packs) can be compared with it.

    python -m tools.export.signature PACK                       # print the signature
    python -m tools.export.signature PACK --write sig.json      # save it
    python -m tools.export.signature PACK --compare tests/models/signature.json
"""

import argparse
import json
import os
import sys

from . import contract as C

SIGNATURE_FORMAT = "gst-dawn-pack-signature"
RES_SYMBOLS = ("S", "S/2", "s", "Cs")

_DTYPES = {1: "float32", 2: "uint8", 3: "int8", 5: "int16", 6: "int32", 7: "int64", 9: "bool",
           10: "float16", 11: "float64", 16: "bfloat16"}


def _value_info(vi):
    t = vi.type.tensor_type
    dims = []
    for d in t.shape.dim:
        if d.HasField("dim_value"):
            dims.append(int(d.dim_value))
        elif d.HasField("dim_param") and d.dim_param:
            dims.append(d.dim_param)
        else:
            dims.append("?")
    return {"name": vi.name, "dtype": _DTYPES.get(t.elem_type, f"onnx:{t.elem_type}"), "dims": dims}


def graph_signature(path):
    """Signature of one ONNX file (weights are not loaded)."""
    import onnx  # lazy: only this function needs it

    model = onnx.load(path, load_external_data=False)
    inits = {i.name for i in model.graph.initializer}
    return {
        "inputs": [_value_info(v) for v in model.graph.input if v.name not in inits],
        "outputs": [_value_info(v) for v in model.graph.output],
    }


def pack_signature(pack_dir):
    with open(os.path.join(pack_dir, "manifest.json"), encoding="utf-8") as f:
        manifest = json.load(f)
    graphs = {}
    for role in C.ROLES:
        graphs[role] = graph_signature(os.path.join(pack_dir, manifest["graphs"][role]))
    return {
        "format": SIGNATURE_FORMAT,
        "version": 1,
        "resolution": manifest["resolution"],
        "precision": manifest.get("provenance", {}).get("precision"),
        "graphs": graphs,
    }


def _template(role):
    return C.graph_io(role, "S", cs="Cs")


def normalize_signature(sig):
    """Copy of ``sig`` whose graphs have the dims that the contract derives from the resolution
    (S, S/2, s) and the static channel count Cs replaced by those symbols. Positions follow the
    contract; a graph whose I/O names differ from the contract is left as it is there (the
    comparison then reports the names)."""
    out = {"format": sig.get("format"), "version": sig.get("version"), "graphs": {}}
    for role, g in sig["graphs"].items():
        try:
            t_in, t_out = _template(role)
        except KeyError:
            out["graphs"][role] = g
            continue
        tmpl = {n: d for n, d in t_in + t_out}
        ng = {}
        for kind in ("inputs", "outputs"):
            ng[kind] = []
            for io in g[kind]:
                dims = list(io["dims"])
                td = tmpl.get(io["name"])
                if td is not None and len(td) == len(dims):
                    dims = [t if t in RES_SYMBOLS else d for t, d in zip(td, dims)]
                ng[kind].append({"name": io["name"], "dtype": io["dtype"], "dims": dims})
        out["graphs"][role] = ng
    return out


def compare_signatures(a, b):
    """Differences between two signatures after normalisation (empty list: identical up to the
    resolution-dependent dims and Cs)."""
    na, nb = normalize_signature(a), normalize_signature(b)
    diffs = []
    for role in C.ROLES:
        ga, gb = na["graphs"].get(role), nb["graphs"].get(role)
        if ga is None or gb is None:
            diffs.append(f"{role}: missing in {'first' if ga is None else 'second'} signature")
            continue
        for kind in ("inputs", "outputs"):
            la, lb = ga[kind], gb[kind]
            if [x["name"] for x in la] != [x["name"] for x in lb]:
                diffs.append(f"{role}: {kind} {[x['name'] for x in la]} != {[x['name'] for x in lb]}")
                continue
            for x, y in zip(la, lb):
                if x != y:
                    diffs.append(f"{role}: {kind[:-1]} `{x['name']}` {x['dtype']} {x['dims']} != "
                                 f"{y['dtype']} {y['dims']}")
    return diffs


def check_contract(sig):
    """Problems of a (concrete) pack signature against the contract for its resolution."""
    res = sig["resolution"]
    problems = []
    cs_vals = set()
    for role in C.ROLES:
        g = sig["graphs"].get(role)
        if g is None:
            problems.append(f"{role}: missing graph")
            continue
        t_in, t_out = C.graph_io(role, res, cs="Cs")
        for kind, tmpl in (("inputs", t_in), ("outputs", t_out)):
            have = {x["name"]: x for x in g[kind]}
            for name, dims in tmpl:
                x = have.pop(name, None)
                if x is None:
                    problems.append(f"{role}: missing {kind[:-1]} `{name}`")
                    continue
                if x["dtype"] != "float32":
                    problems.append(f"{role}: {kind[:-1]} `{name}` has type {x['dtype']}, expected float32")
                ok = len(dims) == len(x["dims"])
                if ok:
                    for want, got in zip(dims, x["dims"]):
                        if want == "Cs":
                            ok &= isinstance(got, int) and got > 0
                            if isinstance(got, int):
                                cs_vals.add(got)
                        elif isinstance(want, str):
                            ok &= got == want
                        else:
                            ok &= got == want
                if not ok:
                    problems.append(f"{role}: {kind[:-1]} `{name}` has shape {x['dims']}, expected {dims}")
            for name in have:
                problems.append(f"{role}: unexpected {kind[:-1]} `{name}` (not in the contract)")
    if len(cs_vals) > 1:
        problems.append(f"static channel count differs between graphs: {sorted(cs_vals)}")
    return problems


def dumps(sig):
    """JSON text of a signature with one line per graph input/output (diff-friendly)."""
    lines = ["{"]
    for k in ("format", "version", "resolution", "precision"):
        lines.append(f" {json.dumps(k)}: {json.dumps(sig.get(k))},")
    lines.append(' "graphs": {')
    roles = list(sig["graphs"])
    for i, role in enumerate(roles):
        g = sig["graphs"][role]
        lines.append(f"  {json.dumps(role)}: {{")
        for kind in ("inputs", "outputs"):
            lines.append(f"   {json.dumps(kind)}: [")
            for j, io in enumerate(g[kind]):
                comma = "," if j < len(g[kind]) - 1 else ""
                lines.append(f"    {json.dumps(io)}{comma}")
            lines.append("   ]" + ("," if kind == "inputs" else ""))
        lines.append("  }" + ("," if i < len(roles) - 1 else ""))
    lines.append(" }")
    lines.append("}")
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m tools.export.signature", description=__doc__.split("\n")[0])
    ap.add_argument("pack")
    ap.add_argument("--write", metavar="FILE", help="write the signature as JSON")
    ap.add_argument("--compare", metavar="FILE", help="compare with a saved signature (normalised)")
    args = ap.parse_args(argv)
    sig = pack_signature(args.pack)
    rc = 0
    problems = check_contract(sig)
    for p in problems:
        print(f"contract: {p}", file=sys.stderr)
    rc |= bool(problems)
    if args.compare:
        with open(args.compare, encoding="utf-8") as f:
            ref = json.load(f)
        diffs = compare_signatures(sig, ref)
        for d in diffs:
            print(f"differs: {d}", file=sys.stderr)
        rc |= bool(diffs)
        if not diffs:
            print(f"{args.pack}: signature matches {args.compare} (up to S, s and Cs)")
    if args.write:
        with open(args.write, "w", encoding="utf-8") as f:
            f.write(dumps(sig))
    elif not args.compare:
        json.dump(sig, sys.stdout, indent=1)
        print()
    return rc


if __name__ == "__main__":
    sys.exit(main())
