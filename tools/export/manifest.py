"""manifest.json: build, write and validate against docs/model-pack.md. Torch-free."""

import datetime
import json
import math
import os

from . import TOOL
from . import contract as C


def build_manifest(resolution, precision, weights, checkpoints=None, source="", notes="",
                   created=None, name=None, sampling_steps=20, extra_provenance=None):
    """The manifest dict of an exported pack (key order as in the contract document)."""
    if created is None:
        created = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    prov = {
        "kind": "export",
        "weights": weights,
        "precision": precision,
        "tool": TOOL,
        "created": created,
        "source": source,
        "checkpoints": dict(checkpoints or {}),
        "notes": notes,
    }
    if extra_provenance:
        prov.update(extra_provenance)
    return {
        "format": C.FORMAT,
        "version": C.VERSION,
        "name": name or f"DAWN {resolution}x{resolution}" + (" (random weights)" if weights == "random" else ""),
        "resolution": resolution,
        "latent_size": resolution // 4,
        "fps": C.FPS,
        "sample_rate": C.SAMPLE_RATE,
        "audio": {
            "feature_dim": C.FEATURE_DIM,
            "feature_rate": 50,
            "hop_samples": 320,
            "window_samples": 400,
            "normalize_eps": 1e-7,
        },
        "pbnet": {
            "noise_dim": C.NOISE_DIM,
            "pose_dim": C.POSE_DIM,
            "eye_dim": C.EYE_DIM,
            "pose_min": list(C.POSE_MIN),
            "pose_max": list(C.POSE_MAX),
        },
        "diffusion": {
            "schedule": "cosine",
            "train_timesteps": 1000,
            "cosine_s": 0.008,
            "max_beta": 0.9999,
            "sampling_steps": sampling_steps,
            "eta": 1.0,
            "threshold_quantile": 0.9,
            "latent_channels": C.LATENT_CHANNELS,
            "condition_dim": C.COND_DIM,
            "attention_window": C.ATTENTION_WINDOW,
        },
        "defaults": {
            "init_pose": list(C.DEFAULT_INIT_POSE),
            "init_eye": list(C.DEFAULT_INIT_EYE),
        },
        "graphs": {role: C.graph_file(role) for role in C.ROLES},
        "provenance": prov,
    }


def write_manifest(pack_dir, manifest):
    path = os.path.join(pack_dir, "manifest.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    return path


def load_manifest(pack_dir):
    with open(os.path.join(pack_dir, "manifest.json"), encoding="utf-8") as f:
        return json.load(f)


_MISSING = object()


def _num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def validate_manifest(m, pack_dir=None):
    """All differences between manifest dict ``m`` and the contract (the rule table of
    docs/model-pack.md), as a list of strings; empty when valid. With ``pack_dir`` the graph
    files must exist there."""
    problems = []

    def get(path):
        cur = m
        for key in path.split("."):
            if not isinstance(cur, dict) or key not in cur:
                return _MISSING
            cur = cur[key]
        return cur

    def need(path, pred, expect):
        v = get(path)
        if v is _MISSING:
            problems.append(f"manifest.json: missing key `{path}`")
            return None
        if not pred(v):
            problems.append(f"manifest.json: {path} is {json.dumps(v)}, expected {expect}")
        return v

    if not isinstance(m, dict):
        return ["manifest.json: not a JSON object"]
    need("format", lambda v: v == C.FORMAT, json.dumps(C.FORMAT))
    need("version", lambda v: v == C.VERSION and _int(v), str(C.VERSION))
    res = need("resolution", lambda v: v in C.RESOLUTIONS and _int(v), "64, 128 or 256")
    if _int(res) and res in C.RESOLUTIONS:
        need("latent_size", lambda v: v == res // 4 and _int(v), f"resolution/4 = {res // 4}")
    else:
        need("latent_size", _int, "an integer")
    need("fps", lambda v: v == C.FPS, str(C.FPS))
    need("sample_rate", lambda v: v == C.SAMPLE_RATE, str(C.SAMPLE_RATE))
    need("audio.feature_dim", lambda v: v == C.FEATURE_DIM, str(C.FEATURE_DIM))
    need("audio.feature_rate", lambda v: v == 50, "50")
    need("audio.hop_samples", lambda v: v == 320, "320")
    need("audio.window_samples", lambda v: v == 400, "400")
    need("audio.normalize_eps", lambda v: _num(v) and v > 0, "> 0")
    need("pbnet.noise_dim", lambda v: _int(v) and v > 0, "> 0")
    need("pbnet.pose_dim", lambda v: v == C.POSE_DIM, str(C.POSE_DIM))
    need("pbnet.eye_dim", lambda v: v == C.EYE_DIM, str(C.EYE_DIM))
    pmin = need("pbnet.pose_min", lambda v: isinstance(v, list) and len(v) == 6 and all(map(_num, v)),
                "6 numbers")
    pmax = need("pbnet.pose_max", lambda v: isinstance(v, list) and len(v) == 6 and all(map(_num, v)),
                "6 numbers")
    if (isinstance(pmin, list) and isinstance(pmax, list) and len(pmin) == len(pmax) == 6
            and all(map(_num, pmin + pmax)) and not all(a < b for a, b in zip(pmin, pmax))):
        problems.append("manifest.json: pbnet.pose_min must be < pbnet.pose_max element-wise")
    need("diffusion.schedule", lambda v: v == "cosine", '"cosine"')
    tt = need("diffusion.train_timesteps", lambda v: _int(v) and v >= 2, ">= 2")
    need("diffusion.cosine_s", lambda v: _num(v) and v > 0, "> 0")
    need("diffusion.max_beta", lambda v: _num(v) and 0 < v < 1, "in (0, 1)")
    hi = tt if _int(tt) else None
    need("diffusion.sampling_steps",
         lambda v: _int(v) and v >= 1 and (hi is None or v < hi), "1 <= steps < train_timesteps")
    need("diffusion.eta", lambda v: _num(v) and v >= 0, ">= 0")
    need("diffusion.threshold_quantile", lambda v: _num(v) and 0 < v <= 1, "in (0, 1]")
    need("diffusion.latent_channels", lambda v: v == C.LATENT_CHANNELS, str(C.LATENT_CHANNELS))
    pd, ed = get("pbnet.pose_dim"), get("pbnet.eye_dim")
    want_cond = (C.FEATURE_DIM + pd + ed) if _int(pd) and _int(ed) else C.COND_DIM
    need("diffusion.condition_dim", lambda v: v == want_cond, f"1024 + pose_dim + eye_dim = {want_cond}")
    need("diffusion.attention_window", lambda v: _int(v) and v >= 0, "a non-negative integer")
    need("defaults.init_pose", lambda v: isinstance(v, list) and len(v) == 6 and all(map(_num, v)), "6 numbers")
    need("defaults.init_eye", lambda v: isinstance(v, list) and len(v) == 2 and all(map(_num, v)), "2 numbers")
    graphs = get("graphs")
    if graphs is _MISSING or not isinstance(graphs, dict):
        problems.append("manifest.json: missing object `graphs`")
    else:
        for role in C.ROLES:
            f = graphs.get(role)
            if not isinstance(f, str) or not f:
                problems.append(f"manifest.json: graphs.{role} is missing")
            elif pack_dir is not None and not os.path.isfile(os.path.join(pack_dir, f)):
                problems.append(f"{role}: graph file {f} is missing")
    prov = get("provenance")
    if prov is _MISSING or not isinstance(prov, dict):
        problems.append("manifest.json: missing object `provenance`")
    else:
        need("provenance.precision", lambda v: v in ("fp32", "fp16"), '"fp32" or "fp16"')
    return problems
