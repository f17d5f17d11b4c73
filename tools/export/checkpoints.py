"""Locating the DAWN checkpoint files. Torch-free.

Layout expected under ``--checkpoints DIR`` (the Hugging Face repo ``Hanbo-Cheng/DAWN`` as
downloaded, or DAWN-pytorch's ``pretrain_models/``):

    DAWN_128.pth | DAWN_256.pth                  key 'diffusion'  (A2V-FDM U-Net)
    LFG_128_1000ep.pth | LFG_256_400ep.pth       key 'generator'  (LFG; any LFG_<res>_*.pth)
    pbnet_seperate/pose/checkpoint_*.pth.tar + opt.yaml     (or pbnet/pose/...)
    pbnet_seperate/blink/checkpoint_*.pth.tar + opt.yaml    (or pbnet/blink/...)

HuBERT comes from ``--hubert DIR``: a local copy of ``facebook/hubert-large-ls960-ft``
(config.json + model.safetensors or pytorch_model.bin).
"""

import glob
import os
import re


class CheckpointError(Exception):
    """A checkpoint file is missing or unusable; the message says what and where."""


LFG_NAMES = {128: "LFG_128_1000ep.pth", 256: "LFG_256_400ep.pth"}
PBNET_DIRS = ("pbnet_seperate", "pbnet")
HUBERT_WEIGHTS = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json",
                  "pytorch_model.bin.index.json")


def _step(path):
    m = re.search(r"checkpoint_(\d+)", os.path.basename(path))
    return int(m.group(1)) if m else -1


def _find_pbnet(root, kind, problems):
    tried = []
    for d in PBNET_DIRS:
        folder = os.path.join(root, d, kind)
        tried.append(folder)
        if not os.path.isdir(folder):
            continue
        ckpts = sorted(glob.glob(os.path.join(folder, "checkpoint_*.pth.tar")), key=_step)
        opt = os.path.join(folder, "opt.yaml")
        if not ckpts:
            problems.append(f"PBNet {kind}: no checkpoint_*.pth.tar in {folder}")
            return None
        if not os.path.isfile(opt):
            problems.append(f"PBNet {kind}: {opt} is missing (the architecture comes from it)")
            return None
        if len(ckpts) > 1:
            print(f"note: PBNet {kind}: several checkpoints in {folder}; using {os.path.basename(ckpts[-1])}")
        return {"checkpoint": ckpts[-1], "opt": opt}
    problems.append(f"PBNet {kind}: none of {', '.join(tried)} exists "
                    f"(download pbnet_seperate/{kind}/ from Hanbo-Cheng/DAWN)")
    return None


def resolve_checkpoints(root, resolution):
    """Paths of every checkpoint file the export of ``resolution`` needs. Raises CheckpointError
    listing *all* missing files."""
    problems = []
    if not os.path.isdir(root):
        raise CheckpointError(f"--checkpoints {root}: not a directory")
    out = {}
    dawn = os.path.join(root, f"DAWN_{resolution}.pth")
    if os.path.isfile(dawn):
        out["dawn"] = dawn
    else:
        problems.append(f"A2V-FDM: {dawn} is missing (DAWN_{resolution}.pth from Hanbo-Cheng/DAWN)")
    lfg = os.path.join(root, LFG_NAMES[resolution])
    if not os.path.isfile(lfg):
        cands = sorted(glob.glob(os.path.join(root, f"LFG_{resolution}_*.pth")))
        lfg = cands[0] if len(cands) == 1 else None
    if lfg:
        out["lfg"] = lfg
    else:
        problems.append(f"LFG: {os.path.join(root, LFG_NAMES[resolution])} is missing "
                        f"({LFG_NAMES[resolution]} from Hanbo-Cheng/DAWN)")
    for kind in ("pose", "blink"):
        r = _find_pbnet(root, kind, problems)
        if r:
            out[f"pbnet_{kind}"] = r["checkpoint"]
            out[f"pbnet_{kind}_opt"] = r["opt"]
    if problems:
        raise CheckpointError("missing checkpoint files:\n  - " + "\n  - ".join(problems))
    return out


def resolve_hubert(folder):
    """The HuBERT files used (config + weights). Raises CheckpointError when incomplete."""
    if not folder or not os.path.isdir(folder):
        raise CheckpointError(f"--hubert {folder}: not a directory (a local copy of "
                              f"facebook/hubert-large-ls960-ft is needed)")
    cfg = os.path.join(folder, "config.json")
    weights = [os.path.join(folder, w) for w in HUBERT_WEIGHTS if os.path.isfile(os.path.join(folder, w))]
    problems = []
    if not os.path.isfile(cfg):
        problems.append(f"{cfg} is missing")
    if not weights:
        problems.append(f"no weights in {folder} (expected one of {', '.join(HUBERT_WEIGHTS)})")
    if problems:
        raise CheckpointError("HuBERT: " + "; ".join(problems))
    files = [cfg, weights[0]]
    if weights[0].endswith(".index.json"):
        import json

        with open(weights[0], encoding="utf-8") as f:
            shards = sorted(set(json.load(f)["weight_map"].values()))
        files += [os.path.join(folder, s) for s in shards]
    return files
