"""Per-stage differences between the port and upstream, and the verdict (torch-free).

The metric of every stage is the exporter's: max |port − upstream| and that divided by
max |upstream| ("rel"). Each stage has a bound; the run fails when any stage exceeds its bound.
The bounds are float32 rounding with a wide margin: the measured differences on random weights
are 10 to 100 times smaller (docs/fidelity.md), while a real deviation (another audio alignment,
other timesteps, another noise order) is 1e-2 or more.
"""

import numpy as np

BOUNDS = {
    "audio features": 1e-4,
    "PBNet Δpose": 1e-4,
    "PBNet Δeye": 1e-4,
    "conditioning": 1e-4,
    "ε": 1e-4,
    "final latents": 1e-4,
    "frames": 1e-3,
}
UINT8_BOUND = 2  # levels of the 8-bit frames


def diff(port, upstream):
    """(max abs, rel) of two arrays of the same shape."""
    a = np.asarray(port, np.float64)
    b = np.asarray(upstream, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: port {a.shape}, upstream {b.shape}")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        return float("inf"), float("inf")
    mab = float(np.max(np.abs(a - b))) if a.size else 0.0
    den = float(np.max(np.abs(b))) if b.size else 0.0
    return mab, (mab / den if den > 0 else (0.0 if mab == 0 else float("inf")))


def to_uint8(frames):
    """The 8-bit output both sides write: trunc(clip(v, 0, 1) · 255)."""
    return (np.clip(np.asarray(frames, np.float32), 0, 1) * 255).astype(np.uint8)


def stage_pairs(port, upstream):
    """[(stage, step label, port array, upstream array)] in pipeline order. ``port`` is
    read_engine_dump's dict; ``upstream`` the dict of tools.parity.upstream (batch axes kept)."""
    pairs = [
        ("audio features", "", port["audio_features"], upstream["audio_features"]),
        ("PBNet Δpose", "", port["pbnet_pose_delta"], upstream["pbnet_pose_delta"]),
        ("PBNet Δeye", "", port["pbnet_blink_delta"], upstream["pbnet_blink_delta"]),
        ("conditioning", "", port["cond"], upstream["cond"][0]),
    ]
    if len(port["eps"]) != len(upstream["eps"]):
        raise ValueError(f"the port ran {len(port['eps'])} denoiser steps, upstream "
                         f"{len(upstream['eps'])}")
    for j, (a, b) in enumerate(zip(port["eps"], upstream["eps"])):
        pairs.append(("ε", f"step {j + 1}", a, b[0]))
    pairs.append(("final latents", "", port["latents"], upstream["latents"][0]))
    pairs.append(("frames", "", port["frames"], upstream["frames"]))
    return pairs


def compare(port, upstream):
    """Rows {stage, step, shape, max_abs, rel, bound, pass} plus the uint8 row."""
    rows = []
    for stage, step, a, b in stage_pairs(port, upstream):
        mab, rel = diff(a, b)
        bound = BOUNDS[stage]
        rows.append({"stage": stage, "step": step, "shape": list(np.shape(a)), "max_abs": mab,
                     "rel": rel, "bound": bound, "pass": bool(rel <= bound)})
    levels = int(np.max(np.abs(to_uint8(port["frames"]).astype(int)
                               - to_uint8(upstream["frames"]).astype(int))))
    rows.append({"stage": "frames (8-bit)", "step": "", "shape": list(np.shape(port["frames"])),
                 "max_abs": float(levels), "rel": None, "bound": UINT8_BOUND,
                 "pass": levels <= UINT8_BOUND})
    return rows


def table(rows):
    lines = ["| stage | shape | max abs diff | rel diff | bound | |", "|---|---|---|---|---|---|"]
    for r in rows:
        name = r["stage"] + (f" ({r['step']})" if r["step"] else "")
        shape = "×".join(str(d) for d in r["shape"])
        if r["rel"] is None:
            lines.append(f"| {name} | {shape} | {r['max_abs']:.0f} levels | | ≤ {r['bound']} | "
                         f"{'ok' if r['pass'] else 'FAIL'} |")
        else:
            lines.append(f"| {name} | {shape} | {r['max_abs']:.2e} | {r['rel']:.2e} | "
                         f"{r['bound']:.0e} | {'ok' if r['pass'] else 'FAIL'} |")
    return "\n".join(lines)


def summary_row(n, rows):
    """One line per clip length for the summary table."""
    by = {}
    for r in rows:
        key = r["stage"]
        if r["rel"] is not None:
            by[key] = max(by.get(key, 0.0), r["rel"])
        else:
            by[key] = r["max_abs"]
    return {"samples": n, "n_mod_640": n % 640, "n_frames": n // 640,
            "audio features": by["audio features"], "conditioning": by["conditioning"],
            "ε (worst step)": by["ε"], "final latents": by["final latents"],
            "frames": by["frames"], "frames (8-bit)": int(by["frames (8-bit)"]),
            "pass": all(r["pass"] for r in rows)}


def summary_table(summaries):
    cols = ["audio features", "conditioning", "ε (worst step)", "final latents", "frames"]
    lines = ["| samples | n mod 640 | frames | " + " | ".join(f"{c} (rel)" for c in cols)
             + " | frames (8-bit levels) | |",
             "|---" * (len(cols) + 5) + "|"]
    for s in summaries:
        lines.append(f"| {s['samples']} | {s['n_mod_640']} | {s['n_frames']} | "
                     + " | ".join(f"{s[c]:.1e}" for c in cols)
                     + f" | {s['frames (8-bit)']} | {'ok' if s['pass'] else 'FAIL'} |")
    return "\n".join(lines)
