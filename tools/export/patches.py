"""Export-time patches of the upstream DAWN modules (reference §8.1). Needs torch.

Everything here wraps or replaces *instances* of upstream modules; upstream source is untouched.

- ``InGraphRelPosBias``: the T5 relative-position bias + band mask computed inside the graph from
  the frame count (no host ``pos_bias`` input, no boolean Add). The bucket of a relative distance
  saturates beyond a distance K (27 for the U-Net, 123 for PBNet), so the learned bucket table is
  expanded at export time into a per-distance table over [-K, K] (using upstream's own bucket
  function), and the graph computes ``table[clamp(j - i, -K, K) + K]``: exact for every distance.
  The band mask (|i - j| > window -> large negative) is a Where on the same distances.
- ``patch_rotary``: RoPE without the per-length cache; angles and cos/sin in float32.
- ``SplitInitConv`` / ``fold_static``: the U-Net's first convolution split into the per-call
  3-channel part and the constant 272-channel part (+ bias), folded into ``static``.
- ``BandedTemporalAttention``: exact block-banded temporal attention (query blocks of B frames see
  keys [start - W, start + B + W)), linear memory in F (reference §5.5 (b)).
"""

import types

import torch
import torch.nn.functional as F
from torch import nn

FP32_MASK = -1e8     # upstream's value
FP16_MASK = -3.0e4   # finite in float16 (max 65504) even after adding logits and the bias


def mask_value(dtype):
    return FP16_MASK if dtype == torch.float16 else FP32_MASK


def saturation_distance(bucket_fn, limit=100000):
    """Smallest K with bucket(d) == bucket(sign(d) * K) for every |d| >= K (both signs)."""
    ks = []
    for sign in (1, -1):
        d = torch.arange(0, limit, dtype=torch.long) * sign
        b = bucket_fn(d)
        changes = torch.nonzero(b[1:] != b[:-1]).flatten()
        ks.append(int(changes[-1]) + 1 if len(changes) else 0)
    return max(ks)


class InGraphRelPosBias(nn.Module):
    """Drop-in for upstream ``RelativePositionBias.forward(n, device)``: returns the [heads, n, n]
    bias with the band mask added (dense), or the [heads, B, B + 2W] block bias (banded)."""

    def __init__(self, upstream, window, dtype=torch.float32, band_block=None):
        super().__init__()
        nb, md = upstream.num_buckets, upstream.max_distance

        def bucket(rel):  # upstream's own function, on j - i like its forward
            return upstream._relative_position_bucket(rel, num_buckets=nb, max_distance=md)

        k = saturation_distance(bucket)
        rel = torch.arange(-k, k + 1, dtype=torch.long)
        with torch.no_grad():
            table = upstream.relative_attention_bias.weight.detach().float()[bucket(rel)]  # [2K+1, H]
        # plain attribute, not a buffer: stays float32 when the module is cast to fp16
        self.table = table.t().contiguous()  # [H, 2K+1]
        self.k = k
        self.window = window
        self.dtype = dtype
        self.band_block = band_block

    def _bias(self, d):
        idx = torch.clamp(d, -self.k, self.k) + self.k
        bias = self.table.float()[:, idx]                      # [H, ..., ...]
        masked = torch.abs(d) > self.window
        bias = torch.where(masked, torch.full_like(bias, mask_value(self.dtype)), bias)
        return bias.to(self.dtype)

    def forward(self, n, device=None, eval=False):
        if self.band_block:
            B, W = self.band_block, self.window
            qi = torch.arange(B, dtype=torch.long)
            kj = torch.arange(B + 2 * W, dtype=torch.long) - W
            return self._bias(kj[None, :] - qi[:, None])      # [H, B, B+2W]
        pos = torch.arange(n, dtype=torch.long, device=device)
        return self._bias(pos[None, :] - pos[:, None])          # [H, n, n], d = j - i


def _rotate_half(x, rot):
    """rotary-embedding-torch's rotate_half ('... (d r) -> ... d r', (-x2, x1)) on the last axis of
    known size ``rot``, with explicit positive axes and sizes: its unbind(dim=-1) and a dynamic
    cos/sin width export with wrongly inferred ranks/sizes inside PBNet's cross-attention."""
    r = x.dim()
    x = x.reshape(*x.shape[:-1], rot // 2, 2)
    x1, x2 = x.select(r, 0), x.select(r, 1)
    return torch.stack((-x2, x1), dim=r).reshape(*x.shape[:-2], rot)


def _rope_rotate(self, t, seq_dim=None, offset=0, freq_seq_len=None):
    """Replacement for RotaryEmbedding.rotate_queries_or_keys (rotary-embedding-torch 0.3.5):
    same result, no cache, angles and cos/sin computed in float32."""
    seq_dim = self.default_seq_dim if seq_dim is None else seq_dim
    n = t.shape[seq_dim]
    pos = (torch.arange(n, device=t.device, dtype=torch.float32) + offset) / self.interpolate_factor
    freqs = pos[:, None] * self._freqs_fp32_interleaved[None, :]   # '... n -> ... (n r)', r = 2
    if seq_dim == -3:
        freqs = freqs[:, None, :]
    cos, sin = freqs.cos().to(t.dtype), freqs.sin().to(t.dtype)
    rot = self._rot_dim
    t_rot, t_right = t[..., :rot], t[..., rot:]
    t_rot = t_rot * cos + _rotate_half(t_rot, rot) * sin
    return torch.cat((t_rot, t_right), dim=-1)


def patch_rotary(module):
    """Every RotaryEmbedding inside ``module``: per-instance no-cache float32 rotation."""
    n = 0
    for m in module.modules():
        if type(m).__name__ == "RotaryEmbedding" and hasattr(m, "freqs"):
            assert not getattr(m, "use_xpos", False)
            fr = m.freqs.detach().float().clone()
            m._freqs_fp32_interleaved = torch.repeat_interleave(fr, 2)  # constant, [rot]
            m._rot_dim = int(fr.numel() * 2)
            m.learned_freq = True  # also disables upstream's cache, should anything call it
            m.cache.clear()
            m.rotate_queries_or_keys = types.MethodType(_rope_rotate, m)
            n += 1
    return n


class SplitInitConv(nn.Module):
    """Replaces ``Unet3D.init_conv`` (Conv3d 275->64, (1,7,7)). Its input is
    ``cat(x_t [3 ch], static [Cs=64 ch] broadcast over frames)``: only the x_t channels are
    convolved; ``static`` already holds the 272-channel part and the bias."""

    def __init__(self, conv):
        super().__init__()
        self.weight = nn.Parameter(conv.weight.detach()[:, :3].clone(), requires_grad=False)
        self.padding = conv.padding
        self.stride = conv.stride

    def forward(self, x):
        y = F.conv3d(x[:, :3], self.weight, None, self.stride, self.padding)
        return y + x[:, 3:]


def fold_static(conv, fea):
    """The 272 constant channels through init_conv (+ bias): [1, 272, s, s] -> [1, 64, s, s]."""
    w = conv.weight[:, 3:, 0]  # [64, 272, 7, 7]
    return F.conv2d(fea, w, conv.bias, stride=conv.stride[1:], padding=conv.padding[1:])


class TimeEmbCast(nn.Module):
    """Sinusoidal timestep embedding computed in float32, cast to the model dtype (fp16 packs)."""

    def __init__(self, inner, dtype):
        super().__init__()
        self.inner, self.dtype = inner, dtype

    def forward(self, x):
        return self.inner(x.float()).to(self.dtype)


class BandedTemporalAttention(nn.Module):
    """Exact block-banded replacement of upstream's temporal ``Attention`` (dense + band mask).

    Frames are cut into query blocks of B; block b's queries see the keys of frames
    [bB - W, bB + B + W) (zero-padded outside [0, F) and masked), plus the in-graph relative
    bias + band mask of shape [H, B, B + 2W] (from InGraphRelPosBias in banded mode). Memory and
    compute are O(F (B + 2W)) instead of O(F^2); the softmax sees exactly the in-band keys, so the
    result equals the dense one up to float rounding."""

    def __init__(self, attn, block, window, dtype=torch.float32):
        super().__init__()
        self.attn = attn
        self.B, self.W = block, window
        self.dtype = dtype

    def forward(self, x, pos_bias=None, focus_present_mask=None):
        a, B, W = self.attn, self.B, self.W
        qkv = a.to_qkv(x).chunk(3, dim=-1)
        b0, b1, n = x.shape[0], x.shape[1], x.shape[-2]
        q, k, v = (t.reshape(b0, b1, n, a.heads, -1).transpose(-2, -3) for t in qkv)  # [b, hw, H, F, d]
        q = q * a.scale
        if a.rotary_emb is not None:
            q = a.rotary_emb.rotate_queries_or_keys(q)
            k = a.rotary_emb.rotate_queries_or_keys(k)
        d = q.shape[-1]
        starts = torch.arange(0, n, B, dtype=torch.long, device=x.device)            # [nb]
        qi = (starts[:, None] + torch.arange(B, device=x.device)[None, :]).reshape(-1)
        ki = (starts[:, None] + torch.arange(B + 2 * W, device=x.device)[None, :]).reshape(-1)
        qb = F.pad(q, (0, 0, 0, B)).index_select(-2, qi)
        kb = F.pad(k, (0, 0, W, B + W)).index_select(-2, ki)
        vb = F.pad(v, (0, 0, W, B + W)).index_select(-2, ki)
        shp = (b0, b1, a.heads)
        qb = qb.reshape(*shp, -1, B, d)
        kb = kb.reshape(*shp, -1, B + 2 * W, d)
        vb = vb.reshape(*shp, -1, B + 2 * W, d)
        sim = torch.matmul(qb, kb.transpose(-1, -2))                    # [b, hw, H, nb, B, B+2W]
        sim = sim + pos_bias[:, None]                                  # [H, 1, B, B+2W]
        valid = F.pad(torch.ones_like(k[0, 0, 0, :, 0]), (W, B + W)).index_select(0, ki)
        valid = valid.reshape(-1, 1, B + 2 * W) > 0                    # [nb, 1, B+2W]
        sim = torch.where(valid, sim, torch.full_like(sim, mask_value(self.dtype)))
        sim = sim - sim.amax(dim=-1, keepdim=True).detach()
        att = sim.softmax(dim=-1)
        out = torch.matmul(att, vb)                                     # [b, hw, H, nb, B, d]
        out = out.reshape(*shp, -1, d)[..., :n, :]                      # [b, hw, H, F, d]
        out = out.transpose(-2, -3).reshape(b0, b1, n, -1)              # '... h n d -> ... n (h d)'
        return a.to_out(out)


def temporal_attention_wrappers(unet):
    """The EinopsToAndFrom('b c f h w' -> 'b (h w) f c') wrappers of the U-Net's temporal
    attentions (10 of them)."""
    out = []
    for m in unet.modules():
        if (type(m).__name__ == "EinopsToAndFrom" and m.from_einops == "b c f h w"
                and m.to_einops == "b (h w) f c"):
            out.append(m)
    return out


# Speed rewrites of tools/export/fast_unet.py applied by patch_unet (all exact up to float
# rounding; A/B timings in docs/exporter.md). "temporal" only applies to dense attention.
SPEED_REWRITES = ("temporal", "cross", "spatial")


def patch_unet(unet, window, dtype=torch.float32, band_block=None, rewrites=None):
    """Patch a (deep-copied) upstream Unet3D for export; returns it. ``rewrites``: the speed
    rewrites to apply (default ``SPEED_REWRITES``; ``()`` for the plain upstream graph)."""
    from . import fast_unet

    rewrites = SPEED_REWRITES if rewrites is None else tuple(rewrites)
    unet.has_cond = False  # CFG branch off: cond_scale = 1, no null embedding of fixed length
    unet.time_rel_pos_bias = InGraphRelPosBias(unet.time_rel_pos_bias, window, dtype, band_block)
    unet.init_conv = SplitInitConv(unet.init_conv)
    patch_rotary(unet)
    if dtype != torch.float32:
        unet.time_mlp[0] = TimeEmbCast(unet.time_mlp[0], dtype)
    wrappers = temporal_attention_wrappers(unet)
    assert len(wrappers) == 10, f"expected 10 temporal attentions, found {len(wrappers)}"
    if band_block:
        for w in wrappers:
            w.fn = BandedTemporalAttention(w.fn, band_block, window, dtype)
    elif "temporal" in rewrites:
        n = fast_unet.patch_temporal_attention(unet, dtype)
        assert n == 10, f"expected 10 temporal attentions, rewrote {n}"
    if "cross" in rewrites:
        n = fast_unet.patch_cross_attention(unet, dtype)
        assert n == 18, f"expected 18 cross-attention blocks, rewrote {n}"
    if "spatial" in rewrites:
        n = fast_unet.patch_spatial_linear_attention(unet, dtype)
        assert n == 8, f"expected 8 spatial linear attentions, rewrote {n}"
    return unet


def patch_pbnet_decoder(dec, window=200, dtype=torch.float32):
    """PBNet decoder (transformerreemb5): in-graph bias with the eval-mode ±200 band (no print,
    no boolean Add), RoPE without cache."""
    dec.time_rel_pos_bias_tgt = InGraphRelPosBias(dec.time_rel_pos_bias_tgt, window, dtype)
    dec.time_rel_pos_bias_mem = InGraphRelPosBias(dec.time_rel_pos_bias_mem, window, dtype)
    patch_rotary(dec)
    return dec
