"""Locating the DAWN checkpoint files and checking that they are files at all. Torch-free.

Layout expected under ``--checkpoints DIR`` (the Hugging Face repo ``Hanbo-Cheng/DAWN`` as
``hf download`` gives it, or DAWN-pytorch's ``pretrain_models/``):

    DAWN_128.pth | DAWN_256.pth                  key 'diffusion'  (A2V-FDM U-Net)
    LFG_128_1000ep.pth | LFG_256_400ep.pth       key 'generator'  (LFG; any LFG_<res>_*.pth)
    pbnet/pose/checkpoint_*.pth.tar + opt.yaml   (or pbnet_seperate/pose/..., the name in
    pbnet/blink/checkpoint_*.pth.tar + opt.yaml   DAWN-pytorch's code)

HuBERT comes from ``--hubert DIR``: a local copy of ``facebook/hubert-large-ls960-ft``
(config.json + model.safetensors or pytorch_model.bin).

Every problem is a :class:`CheckpointError` whose message names the file and the fix; the
exporter prints it on one line and exits with status 2.
"""

import glob
import os
import re


class CheckpointError(Exception):
    """A checkpoint file is missing or unusable; the message says what and where."""


LFG_NAMES = {128: "LFG_128_1000ep.pth", 256: "LFG_256_400ep.pth"}
PBNET_DIRS = ("pbnet", "pbnet_seperate")
HF_DAWN = "Hanbo-Cheng/DAWN"
HF_HUBERT = "facebook/hubert-large-ls960-ft"
LFS_POINTER = b"version https://git-lfs.github.com/spec/v1"
HUBERT_WEIGHTS = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json",
                  "pytorch_model.bin.index.json")


def short(e):
    """The first line of an exception's message (torch's can run to pages)."""
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}".strip(": ")


def check_file(path, source):
    """Raises CheckpointError when ``path`` is empty or a Git LFS pointer (a clone made without
    LFS holds ~130-byte text files in place of the weights). ``source`` says where to get it."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(len(LFS_POINTER))
    except OSError as e:
        raise CheckpointError(f"{path}: cannot be read ({e.strerror}): check the path and its "
                              f"permissions")
    if size == 0:
        raise CheckpointError(f"{path}: empty file: download it again from {source}")
    if head == LFS_POINTER:
        raise CheckpointError(f"{path}: a Git LFS pointer ({size} bytes), not the weights: fetch "
                              f"the file itself (git lfs pull in that clone, or hf download "
                              f"{source})")


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
                    f"(download pbnet/{kind}/ from {HF_DAWN})")
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
    for key, path in out.items():
        check_file(path, HF_DAWN)
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
        raise CheckpointError("HuBERT: " + "; ".join(problems) + f" (download {HF_HUBERT})")
    files = [cfg, weights[0]]
    if weights[0].endswith(".index.json"):
        import json

        with open(weights[0], encoding="utf-8") as f:
            shards = sorted(set(json.load(f)["weight_map"].values()))
        files += [os.path.join(folder, s) for s in shards]
    for path in files:
        check_file(path, HF_HUBERT)
    return files


# facebook/hubert-large-ls960-ft config.json (the values that shape the network).
HUBERT_LARGE = dict(
    vocab_size=32, hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
    intermediate_size=4096, hidden_act="gelu", hidden_dropout=0.1, activation_dropout=0.1,
    attention_dropout=0.1, feat_proj_dropout=0.1, final_dropout=0.1, layerdrop=0.1,
    initializer_range=0.02, layer_norm_eps=1e-5, feat_extract_norm="layer",
    feat_extract_activation="gelu", conv_dim=[512] * 7, conv_stride=[5, 2, 2, 2, 2, 2, 2],
    conv_kernel=[10, 3, 3, 3, 3, 2, 2], conv_bias=True, num_conv_pos_embeddings=128,
    num_conv_pos_embedding_groups=16, do_stable_layer_norm=True, apply_spec_augment=True,
    mask_time_prob=0.05, mask_time_length=10, mask_feature_prob=0.0, mask_feature_length=10,
    ctc_loss_reduction="sum", ctc_zero_infinity=False, pad_token_id=0, bos_token_id=1,
    eos_token_id=2,
)


# The values that decide HuBERT-Large's tensors and computation (checked in config.json).
HUBERT_LARGE_ARCH = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                     "hidden_act", "layer_norm_eps", "feat_extract_norm", "feat_extract_activation",
                     "conv_dim", "conv_stride", "conv_kernel", "conv_bias",
                     "num_conv_pos_embeddings", "num_conv_pos_embedding_groups",
                     "do_stable_layer_norm")


def check_hubert_config(path):
    """config.json must describe HuBERT-Large (facebook/hubert-large-ls960-ft)."""
    import json

    try:
        with open(path, encoding="utf-8") as f:
            cfg = json.load(f)
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{path}: not a readable config ({short(e)}): download "
                              f"{HF_HUBERT} again") from None
    if not isinstance(cfg, dict) or cfg.get("model_type") != "hubert":
        kind = cfg.get("model_type") if isinstance(cfg, dict) else type(cfg).__name__
        raise CheckpointError(f"{path}: model_type {kind!r}, not 'hubert': --hubert must be a copy "
                              f"of {HF_HUBERT}")
    wrong = [f"{k} {cfg.get(k)!r} (HuBERT-Large: {HUBERT_LARGE[k]!r})"
             for k in HUBERT_LARGE_ARCH if cfg.get(k) != HUBERT_LARGE[k]]
    if wrong:
        raise CheckpointError(f"{path}: not HuBERT-Large: {'; '.join(wrong[:3])}: --hubert must be "
                              f"a copy of {HF_HUBERT}")
    return cfg


def load_opt_yaml(path):
    """PBNet's opt.yaml as a dict: plain YAML only (a file with Python tags is refused, not
    executed)."""
    import yaml

    check_file(path, HF_DAWN)
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{path}: cannot be read as text ({short(e)}): use the opt.yaml "
                              f"released with the checkpoint ({HF_DAWN})") from None
    try:
        opt = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or short(e)
        raise CheckpointError(f"{path}: not plain YAML ({problem}{where}): use the opt.yaml "
                              f"released with the checkpoint ({HF_DAWN}, pbnet/<pose|blink>/); "
                              f"Python tags are not read") from None
    if not isinstance(opt, dict):
        raise CheckpointError(f"{path}: expected a mapping of PBNet options, found "
                              f"{type(opt).__name__}: use the opt.yaml released with the checkpoint")
    return opt


def precheck(args):
    """Everything about the checkpoint files that needs no torch, before anything slow: all files
    present (every missing one listed), none an LFS pointer or empty, HuBERT's config HuBERT-Large,
    both opt.yaml plain YAML. Returns (checkpoint paths, HuBERT files, {kind: opt dict})."""
    errors = []
    ckpts = hub_files = None
    try:
        ckpts = resolve_checkpoints(args.checkpoints, args.resolution)
    except CheckpointError as e:
        errors.append(str(e))
    try:
        hub_files = resolve_hubert(args.hubert)
    except CheckpointError as e:
        errors.append(str(e))
    if errors:
        raise CheckpointError("\n".join(errors))
    check_hubert_config(hub_files[0])
    opts = {kind: load_opt_yaml(ckpts[f"pbnet_{kind}_opt"]) for kind in ("pose", "blink")}
    return ckpts, hub_files, opts
