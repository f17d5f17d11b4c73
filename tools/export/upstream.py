"""Import and build the DAWN networks from the user's DAWN-pytorch checkout (``--dawn-src``).

Nothing from upstream is copied into gst-dawn: the classes are imported from the checkout at run
time (sys.path), constructed exactly as ``unified_video_generator.py`` does, and the checkpoints
are loaded into them with the same state-dict keys. Needs torch.
"""

import contextlib
import importlib
import importlib.abc
import importlib.machinery
import os
import pickle
import sys
import types
import zipfile

import torch
from torch import nn

from . import checkpoints as C
from .checkpoints import CheckpointError

# Packages that upstream modules import at module level but that the exported graphs never use
# (plots, image I/O, torchvision's VGG for a training loss, ...). When one is not installed, a
# stub module stands in for it so the import succeeds (what upstream takes from it at import
# time, e.g. a default argument ``T.ToTensor()``, is an inert placeholder).
STUB_ROOTS = ("torchvision", "cv2", "matplotlib", "skimage", "imageio", "pydub", "soundfile",
              "tensorboardX", "scipy")

FLOW_DIFFUSION_MODULE = ("DM_3.modules.video_flow_diffusion_model_multiGPU_v0_crema_vgg_floss_"
                         "plus_faceemb_flow_fast_init_cond_test")
UNET_MODULE = "DM_3.modules.video_flow_diffusion_multiGPU_v0_crema_plus_faceemb_ca_multi_test"
FACE_LOC_SEED = 1234  # DAWN's RANDOM_SEED / setup_seed() of the demo scripts (reference §10.1)

stubbed = []


class _Stub:
    """Stands in for anything inside a stubbed package (nothing the export runs uses it)."""

    def __init__(self, name):
        self._name = name

    def __getattr__(self, item):
        if item.startswith("__"):
            raise AttributeError(item)
        return _Stub(f"{self._name}.{item}")

    def __call__(self, *a, **k):  # e.g. default arguments like T.ToTensor() at import time
        return _Stub(f"{self._name}()")

    def __iter__(self):
        return iter(())

    def __mro_entries__(self, bases):
        return (object,)


class _StubModule(types.ModuleType):
    def __init__(self, name):
        super().__init__(name)
        self.__path__ = []
        self.__all__ = []

    def __getattr__(self, item):
        if item.startswith("__"):
            raise AttributeError(item)
        return _Stub(f"{self.__name__}.{item}")


class _StubFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def __init__(self, roots):
        self.roots = set(roots)

    def find_spec(self, fullname, path, target=None):
        if fullname.split(".")[0] in self.roots:
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        return _StubModule(spec.name)

    def exec_module(self, module):
        pass


@contextlib.contextmanager
def stubs_for_missing(roots=STUB_ROOTS):
    """While active, the packages of ``roots`` that cannot be imported are replaced by stubs.
    Afterwards the stubs leave sys.modules again (modules imported meanwhile keep their
    references), so that other libraries (transformers) see the real environment."""
    missing = []
    for root in roots:
        if root in sys.modules:
            continue
        try:
            importlib.import_module(root)
        except Exception:  # not installed, or installed but broken (e.g. torchvision/torch mismatch)
            for k in [k for k in sys.modules if k == root or k.startswith(root + ".")]:
                del sys.modules[k]
            missing.append(root)
    finder = _StubFinder(missing)
    if missing:
        sys.meta_path.insert(0, finder)
        stubbed.extend(m for m in missing if m not in stubbed)
    try:
        yield missing
    finally:
        if missing:
            sys.meta_path.remove(finder)
            for k in [k for k in sys.modules if k.split(".")[0] in missing]:
                del sys.modules[k]


def add_dawn_src(dawn_src):
    """Put the checkout (and its PBnet folder, which PBNet imports as ``src``) on sys.path and
    import the upstream modules the export uses."""
    dawn_src = os.path.abspath(dawn_src)
    for p in (os.path.join(dawn_src, "PBnet"), dawn_src):
        if p not in sys.path:
            sys.path.insert(0, p)
    import transformers  # noqa: F401  (before any stub exists)

    with stubs_for_missing():
        for mod in (UNET_MODULE, FLOW_DIFFUSION_MODULE, "src.models.get_model",
                    "src.models.architectures.transformerreemb5", "src.models.modeltype.cvae"):
            try:
                importlib.import_module(mod)
            except ImportError as e:
                raise ImportError(f"cannot import {mod} from --dawn-src {dawn_src}: {e}") from e
    return dawn_src


@contextlib.contextmanager
def _cpu_construction():
    """While FlowDiffusion.__init__ runs: ``torch.load`` of the LFG checkpoint, ``.cuda()`` and the
    LFG ``load_state_dict`` calls become no-ops. None of these touches the CPU RNG, so parameter
    initialisation consumes exactly the random stream it did in the demo scripts."""
    saved = (torch.load, nn.Module.cuda, nn.Module.load_state_dict)
    torch.load = lambda *a, **k: {"generator": None, "region_predictor": None, "bg_predictor": None}
    nn.Module.cuda = lambda self, *a, **k: self
    nn.Module.load_state_dict = lambda self, *a, **k: None
    try:
        yield
    finally:
        torch.load, nn.Module.cuda, nn.Module.load_state_dict = saved


def build_flow_diffusion(dawn_src, resolution):
    """DAWN's ``FlowDiffusion`` built exactly as ``unified_video_generator.py`` builds it (values of
    config/DAWN_<res>.yaml), after ``torch.manual_seed(1234)`` like the demo scripts' setup_seed:
    this reproduces the Face_loc_Encoder weights that no checkpoint contains. LFG and U-Net weights
    are the default initialisation until a checkpoint is loaded."""
    fd_mod = importlib.import_module(FLOW_DIFFUSION_MODULE)
    import yaml

    cfg_path = os.path.join(dawn_src, "config", f"DAWN_{resolution}.yaml")
    with open(cfg_path, encoding="utf-8") as f:
        vcfg = yaml.safe_load(f)
    mc = vcfg["model_config"]
    lfg_cfg = os.path.join(dawn_src, "config", os.path.basename(mc["config_pth"]))
    torch.manual_seed(FACE_LOC_SEED)
    with _cpu_construction():
        model = fd_mod.FlowDiffusion(
            is_train=mc["is_train"],
            sampling_timesteps=vcfg["sampling_step"],
            ddim_sampling_eta=vcfg["ddim_sampling_eta"],
            pose_dim=mc["pose_dim"],
            config_pth=lfg_cfg,
            pretrained_pth="<not loaded at construction>",
            win_width=vcfg["win_width"],
        )
    model.eval()
    return model, vcfg


def _torch_load(path, source=C.HF_DAWN, allow_pickle=False):
    """torch.load with ``weights_only=True``: tensors and plain containers only. A file that also
    pickles Python objects (which run code when loaded) is refused unless ``allow_pickle``
    (``--allow-unsafe-unpickling``); the released DAWN files never need it."""
    C.check_file(path, source)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if not allow_pickle:
            raise CheckpointError(
                f"{path}: holds pickled Python objects besides tensors ({C.short(e)}); the "
                f"exporter does not run pickled code: if you trust the file's source, add "
                f"--allow-unsafe-unpickling") from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as e:
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({C.short(e)}): the file "
                              f"is truncated or damaged; download it again from {source}") from None
    print(f"note: {os.path.basename(path)}: loading with weights_only=False "
          f"(--allow-unsafe-unpickling)")
    return torch.load(path, map_location="cpu", weights_only=False)


def _load_key(path, key, allow_pickle=False):
    ckpt = _torch_load(path, allow_pickle=allow_pickle)
    if not isinstance(ckpt, dict) or key not in ckpt:
        keys = sorted(map(str, ckpt))[:6] if isinstance(ckpt, dict) else type(ckpt).__name__
        raise CheckpointError(f"{path}: expected a dict with key '{key}', found {keys}: this is "
                              f"not the file the exporter expects; download it again from "
                              f"{C.HF_DAWN}")
    return ckpt[key]


def _names(keys, n=3):
    keys = sorted(keys)
    return ", ".join(keys[:n]) + (f", ... ({len(keys)} in all)" if len(keys) > n else "")


def load_strict(module, state, path, what):
    """``module.load_state_dict(state)`` with every tensor required and none left over; a
    mismatch is one CheckpointError naming the file, the first keys and the fix."""
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise CheckpointError(f"{path}: the {what} entry is not a state dict of tensors: download "
                              f"the file again from {C.HF_DAWN}")
    want = module.state_dict()
    missing = [k for k in want if k not in state]
    unexpected = [k for k in state if k not in want]
    shapes = [f"{k} {list(state[k].shape)} vs {list(want[k].shape)}"
              for k in want if k in state and tuple(state[k].shape) != tuple(want[k].shape)]
    parts = []
    if missing:
        parts.append(f"{len(missing)} tensors missing ({_names(missing)})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected ({_names(unexpected)})")
    if shapes:
        parts.append(f"{len(shapes)} of another shape ({_names(shapes, 2)})")
    if parts:
        raise CheckpointError(f"{path}: the {what} weights do not fit DAWN's network: "
                              + "; ".join(parts) + f": use the released file from {C.HF_DAWN} "
                              f"with DAWN-pytorch at commit 76c44b8")
    module.load_state_dict(state, strict=True)


def load_lfg(model, path, allow_pickle=False):
    """LFG_*.pth: key ``generator`` -> FlowDiffusion.generator (as FlowDiffusion.__init__ does)."""
    load_strict(model.generator, _load_key(path, "generator", allow_pickle), path, "LFG generator")


def load_dawn(model, path, allow_pickle=False):
    """DAWN_*.pth: key ``diffusion`` -> FlowDiffusion.diffusion (as _init_video_model does)."""
    load_strict(model.diffusion, _load_key(path, "diffusion", allow_pickle), path,
                "A2V-FDM diffusion")


# ------------------------------------------------------------------------------------------ PBNet

# Reference §4 (training launcher + parser defaults, confirmed by the checkpoint size).
PBNET_DEFAULTS = {
    "modeltype": "cvae",
    "archiname": "transformerreemb5",
    "num_frames": 200,
    "audio_dim": 1024,
    "audio_latent_dim": 256,
    "pose_latent_dim": 64,
    "latent_dim": 256,
    "ff_size": 128,
    "num_layers": 2,
    "num_heads": 4,
    "dropout": 0.1,
    "activation": "gelu",
    "num_buckets": 128,
    "max_distance": 128,
    "lambdas": {"rc": 1.0, "kl": 0.004, "reg": 0.0005},
}


load_opt_yaml = C.load_opt_yaml


def build_pbnet(kind, opt=None):
    """PBNet CVAE for ``kind`` 'pose' (pos_dim 6, eye_dim 0) or 'blink' (0, 2), with the
    parameters of ``opt`` (opt.yaml) or the reference defaults; the overrides are those of
    unified_video_generator.py."""
    get_model = importlib.import_module("src.models.get_model").get_model
    params = dict(PBNET_DEFAULTS if opt is None else opt)
    params["device"] = "cpu"
    params["audio_dim"] = 1024
    params["pos_dim"], params["eye_dim"] = (6, 0) if kind == "pose" else (0, 2)
    if params.get("archiname") != "transformerreemb5":
        print(f"warning: PBNet {kind}: opt.yaml names architecture {params.get('archiname')!r}; "
              f"the released checkpoints need 'transformerreemb5' (issue #17). Trying it anyway.")
    try:
        model = get_model(params)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise CheckpointError(f"PBNet {kind}: opt.yaml does not describe a PBNet ({C.short(e)}): "
                              f"use the opt.yaml released with the checkpoint ({C.HF_DAWN}, "
                              f"pbnet/{kind}/)") from None
    model.eval()
    return model, params


def load_pbnet(model, path, allow_pickle=False):
    sd = _torch_load(path, allow_pickle=allow_pickle)
    if isinstance(sd, dict) and "model" in sd and not any(str(k).startswith("decoder.") for k in sd):
        sd = sd["model"]
    load_strict(model, sd, path, "PBNet")


# ----------------------------------------------------------------------------------------- HuBERT

HUBERT_LARGE = C.HUBERT_LARGE
# Tensors of the ls960-ft file that HubertModel does not have (the CTC head) or may lack
# (masked_spec_embed: SpecAugment's training-only mask embedding, unused in eval).
HUBERT_EXTRA_OK = {"lm_head.weight", "lm_head.bias"}
HUBERT_MISSING_OK = {"masked_spec_embed"}


def build_hubert(hubert_dir=None, files=None):
    """HuBERT-Large: default-initialised (``hubert_dir`` None, for --random-weights) or loaded
    strictly from a local copy of facebook/hubert-large-ls960-ft (``files`` as resolve_hubert
    gives them: config.json, the weights file, shards)."""
    from transformers import HubertConfig, HubertModel

    if not hubert_dir:  # eager attention exports to plain MatMul/Softmax
        model = HubertModel(HubertConfig(**HUBERT_LARGE, attn_implementation="eager"))
        model.eval()
        return model
    files = files or C.resolve_hubert(hubert_dir)
    C.check_hubert_config(files[0])
    return load_hubert_weights(hubert_dir, files[1])


def load_hubert_weights(hubert_dir, weights):
    """``HubertModel.from_pretrained`` with every tensor required: missing, unexpected (beyond
    the CTC head) or reshaped tensors are a CheckpointError naming ``weights``."""
    from transformers import HubertModel
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # its load report would repeat what is checked below
    try:
        model, info = HubertModel.from_pretrained(hubert_dir, attn_implementation="eager",
                                                  output_loading_info=True)
    except Exception as e:  # safetensors, torch and transformers each raise their own types
        raise CheckpointError(f"{weights}: cannot be loaded ({C.short(e)}): the file is truncated "
                              f"or damaged; download {C.HF_HUBERT} again") from None
    finally:
        hf_logging.set_verbosity(level)
    missing = set(info.get("missing_keys", ())) - HUBERT_MISSING_OK
    unexpected = set(info.get("unexpected_keys", ())) - HUBERT_EXTRA_OK
    shapes = [str(k[0] if isinstance(k, tuple) else k) for k in info.get("mismatched_keys", ())]
    parts = []
    if missing:
        parts.append(f"{len(missing)} tensors missing ({_names(missing)})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected ({_names(unexpected)})")
    if shapes:
        parts.append(f"{len(shapes)} of another shape ({_names(shapes)})")
    if info.get("error_msgs"):
        parts.append(C.short(Exception(info["error_msgs"][0])))
    if parts:
        raise CheckpointError(f"{weights}: does not fit HuBERT-Large: " + "; ".join(parts)
                              + f": download {C.HF_HUBERT} again")
    model.eval()
    return model
