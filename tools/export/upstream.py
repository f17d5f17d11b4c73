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
import sys
import types

import torch
from torch import nn

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


def _torch_load(path):
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # older checkpoints may pickle non-tensor objects
        print(f"note: {os.path.basename(path)}: weights_only load failed ({type(e).__name__}); "
              f"loading with weights_only=False (trust the file's source)")
        return torch.load(path, map_location="cpu", weights_only=False)


def _load_key(path, key):
    ckpt = _torch_load(path)
    if not isinstance(ckpt, dict) or key not in ckpt:
        keys = list(ckpt.keys())[:10] if isinstance(ckpt, dict) else type(ckpt).__name__
        raise CheckpointError(f"{path}: expected a dict with key '{key}', found {keys}")
    return ckpt[key]


def load_lfg(model, path):
    """LFG_*.pth: key ``generator`` -> FlowDiffusion.generator (as FlowDiffusion.__init__ does)."""
    model.generator.load_state_dict(_load_key(path, "generator"))


def load_dawn(model, path):
    """DAWN_*.pth: key ``diffusion`` -> FlowDiffusion.diffusion (as _init_video_model does)."""
    model.diffusion.load_state_dict(_load_key(path, "diffusion"))


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


def load_opt_yaml(path):
    import yaml

    with open(path, encoding="utf-8") as f:
        text = f.read()
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return yaml.load(text, Loader=yaml.FullLoader)


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
    model = get_model(params)
    model.eval()
    return model, params


def load_pbnet(model, path):
    sd = _torch_load(path)
    if isinstance(sd, dict) and "model" in sd and not any(k.startswith("decoder.") for k in sd):
        sd = sd["model"]
    model.load_state_dict(sd)


# ----------------------------------------------------------------------------------------- HuBERT

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


def build_hubert(hubert_dir=None):
    from transformers import HubertConfig, HubertModel

    kw = {}
    try:  # eager attention exports to plain MatMul/Softmax
        if hubert_dir:
            model = HubertModel.from_pretrained(hubert_dir, attn_implementation="eager")
        else:
            model = HubertModel(HubertConfig(**HUBERT_LARGE, attn_implementation="eager", **kw))
    except TypeError:
        model = HubertModel.from_pretrained(hubert_dir) if hubert_dir else HubertModel(HubertConfig(**HUBERT_LARGE))
    model.eval()
    return model
