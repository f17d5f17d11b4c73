"""The six pack graphs as torch modules around (patched copies of) the upstream networks, plus
the unpatched upstream computations used as references by the verification. Needs torch.

Input/output names and layouts follow docs/model-pack.md. All graph I/O is float32; with
``dtype=float16`` the module casts inputs to fp16 inside and outputs back to fp32.
"""

import contextlib
import copy
import io

import torch
from torch import nn

from . import patches


def _out(t):
    return t.float()


class AudioEncoder(nn.Module):
    """HuBERT-Large ``last_hidden_state``; input already normalised by the host."""

    def __init__(self, hubert, dtype=torch.float32):
        super().__init__()
        self.hubert, self.dtype = hubert, dtype

    def forward(self, input_values):
        return _out(self.hubert(input_values.to(self.dtype)).last_hidden_state)


class PBNetDecoder(nn.Module):
    """PBNet decoder (batch 1, no padding): delta [1, N, D] from init_state [1, 1, D],
    z [N, 1, 256] and audio [1, N, 1024] -- what ``CAE.generate`` computes given z."""

    def __init__(self, decoder):
        super().__init__()
        self.decoder = decoder

    def forward(self, init_state, z, audio):
        mask = torch.ones_like(audio[:, :, 0], dtype=torch.bool)
        batch = {"x": init_state, "z": z, "y": audio, "mask": mask, "lengths": mask.sum(1)}
        return self.decoder(batch)["output"]


class PortraitEncoder(nn.Module):
    """LFG encoder (skip0, skip1, feat) + Face_loc_Encoder(face_mask) folded with feat through the
    272 constant input channels of the U-Net's init_conv (bias included) -> static [1, 64, s, s]."""

    def __init__(self, generator, face_loc, init_conv, dtype=torch.float32):
        super().__init__()
        self.gen, self.face_loc, self.init_conv, self.dtype = generator, face_loc, init_conv, dtype

    def forward(self, src_img, face_mask):
        g = self.gen
        skip0 = g.first(src_img.to(self.dtype))
        skip1 = g.down_blocks[0](skip0)
        feat = g.down_blocks[1](skip1)
        assert len(g.down_blocks) == 2
        emb = self.face_loc(face_mask.to(self.dtype))
        static = patches.fold_static(self.init_conv, torch.cat([feat, emb], dim=1))
        return _out(skip0), _out(skip1), _out(feat), _out(static)


class Denoiser(nn.Module):
    """One A2V-FDM U-Net evaluation; the patched U-Net's init_conv takes cat(x_t, static)."""

    def __init__(self, unet, dtype=torch.float32):
        super().__init__()
        self.unet, self.dtype = unet, dtype

    def forward(self, x_t, static, timestep, cond):
        st = static.to(self.dtype).unsqueeze(2).expand(-1, -1, x_t.shape[2], -1, -1)
        x = torch.cat([x_t.to(self.dtype), st], dim=1)
        return _out(self.unet(x, timestep, cond=cond.to(self.dtype)))


class Decoder(nn.Module):
    """``Generator.forward_with_flow`` after its encoder, batched over F frames, with the cached
    encoder outputs (batch 1, broadcast to F in the graph)."""

    def __init__(self, generator, dtype=torch.float32):
        super().__init__()
        self.gen, self.dtype = generator, dtype

    def forward(self, src_img, skip0, skip1, feat, flow, occlusion):
        g, dt = self.gen, self.dtype
        n = flow.shape[0]
        src, s0, s1, ft = (t.to(dt).expand(n, -1, -1, -1) for t in (src_img, skip0, skip1, feat))
        mp = {"optical_flow": flow.to(dt), "occlusion_map": occlusion.to(dt)}
        skips = [s0, s1, ft]
        out = g.apply_optical(input_previous=None, input_skip=ft, motion_params=mp)
        out = g.bottleneck(out)
        for i in range(len(g.up_blocks)):
            if g.skips:
                out = g.apply_optical(input_skip=skips[-(i + 1)], input_previous=out, motion_params=mp)
            out = g.up_blocks[i](out)
        if g.skips:
            out = g.apply_optical(input_skip=skips[0], input_previous=out, motion_params=mp)
        out = torch.sigmoid(g.final(out))
        if g.skips:
            out = g.apply_optical(input_skip=src, input_previous=out, motion_params=mp)
        return _out(out)


# ------------------------------------------------------------------------------- export modules

NORM_CLASSES = ("LayerNorm", "LayerNorm_img", "GroupNorm")


class Fp32Norm(nn.Module):
    """A normalisation layer run in float32 inside an fp16 graph (as autocast does): variance
    sums of fp16 activations overflow easily."""

    def __init__(self, norm):
        super().__init__()
        self.norm = norm.float()

    def forward(self, x):
        return self.norm(x.float()).to(x.dtype)


def keep_norms_fp32(root):
    targets = []
    for name, parent in root.named_modules():
        for child_name, child in parent.named_children():
            if type(child).__name__ in NORM_CLASSES and not isinstance(parent, Fp32Norm):
                targets.append((parent, child_name, child))
    for parent, child_name, child in targets:
        setattr(parent, child_name, Fp32Norm(child))
    return len(targets)


def _prep(module, dtype):
    if dtype != torch.float32:
        module = module.to(dtype)
        keep_norms_fp32(module)
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module


def make_export_modules(fd, pbnets, hubert, dtype=torch.float32, attention="dense", band_block=40,
                        window=40, roles=None):
    """{role: torch module with the contract's inputs/outputs}. ``fd`` is the FlowDiffusion,
    ``pbnets`` {'pose': CVAE, 'blink': CVAE}. Works on deep copies; ``fd`` etc. stay unpatched
    as references."""
    roles = roles or ("audio_encoder", "pbnet_pose", "pbnet_blink", "portrait_encoder", "denoiser", "decoder")
    mods = {}
    for role in roles:
        if role == "audio_encoder":
            mods[role] = AudioEncoder(_prep(hubert if dtype == torch.float32 else copy.deepcopy(hubert), dtype), dtype)
        elif role in ("pbnet_pose", "pbnet_blink"):
            # PBNet stays float32 in fp16 packs (upstream builds fp32 tensors inside; ~MFLOP/frame)
            dec = patches.patch_pbnet_decoder(copy.deepcopy(pbnets[role.split("_")[1]].decoder))
            mods[role] = PBNetDecoder(_prep(dec, torch.float32))
        elif role == "portrait_encoder":
            gen, fl, conv = (copy.deepcopy(m) for m in (fd.generator, fd.face_loc_emb, fd.unet.init_conv))
            mods[role] = PortraitEncoder(_prep(gen, dtype), _prep(fl, dtype), _prep(conv, dtype), dtype)
        elif role == "denoiser":
            unet = patches.patch_unet(copy.deepcopy(fd.unet), window, dtype,
                                      band_block if attention == "banded" else None)
            mods[role] = Denoiser(_prep(unet, dtype), dtype)
        elif role == "decoder":
            mods[role] = Decoder(_prep(copy.deepcopy(fd.generator), dtype), dtype)
    for m in mods.values():
        m.eval()
    return mods


# ------------------------------------------------------------------------ upstream references

@contextlib.contextmanager
def _quiet():
    import sys

    saved = sys.stdout
    sys.stdout = io.StringIO()  # PBNet's eval-mode bias prints 'eval!' on every call
    try:
        yield
    finally:
        sys.stdout = saved


class References:
    """The unpatched upstream computations (float32, eager) that each graph must reproduce."""

    def __init__(self, fd, pbnets, hubert):
        self.fd, self.pbnets, self.hubert = fd, pbnets, hubert

    @torch.no_grad()
    def audio_encoder(self, input_values):
        return {"last_hidden_state": self.hubert(input_values).last_hidden_state}

    @torch.no_grad()
    def pbnet(self, kind, init_state, z, audio):
        mask = torch.ones(audio.shape[:2], dtype=torch.bool)
        lengths = torch.tensor([audio.shape[1]])
        with _quiet():  # exactly CAE.generate's decoder call, with our z instead of randn
            out = self.pbnets[kind].decoder({"x": init_state, "z": z, "y": audio, "mask": mask,
                                             "lengths": lengths})["output"]
        return {"delta": out}

    @torch.no_grad()
    def portrait(self, src_img, face_mask):
        g = self.fd.generator
        skip0 = g.first(src_img)
        skip1 = g.down_blocks[0](skip0)
        feat = g.compute_fea(src_img)
        emb = self.fd.face_loc_emb(face_mask)
        # static reference: the full upstream init_conv on (x_t = 0, feat, face_emb)
        x0 = torch.cat([torch.zeros_like(feat[:, :3]), feat, emb], dim=1).unsqueeze(2)
        static = self.fd.unet.init_conv(x0)[:, :, 0]
        return {"skip0": skip0, "skip1": skip1, "feat": feat, "static": static}, torch.cat([feat, emb], 1)

    @torch.no_grad()
    def denoiser(self, x_t, fea272, timestep, cond):
        """Upstream Unet3D.forward_with_cond_scale on cat(x_t, feat, face_emb) (what
        GaussianDiffusion.ddim_sample feeds it), cond_scale 1, with the dense band-masked
        attention of the released config."""
        unet = self.fd.unet
        n = x_t.shape[2]
        unet.update_num_frames(n)
        fea = fea272.unsqueeze(2).repeat(1, 1, n, 1, 1)
        t = timestep.round().long()
        eps = unet.forward_with_cond_scale(torch.cat([x_t, fea], dim=1), t, cond=cond, cond_scale=1.0)
        return {"eps": eps}

    @torch.no_grad()
    def decoder(self, src_img, flow, occlusion):
        n = flow.shape[0]
        out = self.fd.generator.forward_with_flow(source_image=src_img.expand(n, -1, -1, -1),
                                                  optical_flow=flow, occlusion_map=occlusion)
        return {"frames": out["prediction"]}
