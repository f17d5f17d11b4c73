"""Speed rewrites of the A2V-FDM U-Net for the ONNX Runtime CPU EP (applied by ``patch_unet``).

Each rewrite replaces an upstream sub-module *instance* by a module computing the same function
with a different (cheaper for ONNX Runtime) operation order: the results differ from upstream
only by float rounding. Why each one helps is written next to it; the A/B timings are in
docs/exporter.md. Needs torch.

- ``FastTemporalAttention``: ``Residual(PreNorm(EinopsToAndFrom(Attention)))`` of the temporal
  attentions. One transpose in and one out, the channel LayerNorm as a single
  LayerNormalization, q/k/v as GEMMs with the 1/sqrt(d) scale folded into the q weights, RoPE
  folded into per-frame projection weights (or two Mul + Add on low-resolution levels; no
  Slice/Split/Neg/Concat), MatMul instead of Einsum, and no max-subtraction before the Softmax
  (Softmax does it itself).
- ``FastCrossAttention3``: the three 2-key cross-attentions of ``ResnetBlock_ca_mul`` (null key +
  one per-frame key each). softmax over two keys is sigmoid(s1 - s0), and with cosine-similarity
  logits ``s1 - s0 = 8 <q/|q| * q_scale, (k1/|k1| - k0/|k0|) * k_scale>``: so the per-pixel work is
  one shared LayerNormalization, one GEMM for the three query projections (LayerNorm gains folded
  in), the per-head norms and dot products, a sigmoid, and ``v0 + p (v1 - v0)`` pushed through
  ``to_out`` as ``c0 + p @ M`` with a per-frame [heads, out] matrix M (8 instead of 64 inner
  products per output).
- ``FastSpatialLinearAttention``: ``Residual(PreNorm(SpatialLinearAttention))`` with a
  LayerNormalization on channels-last data, the 1x1 convolutions as GEMMs and MatMul instead of
  Einsum.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn


def _const(t):
    """A float32 constant (plain attribute: stays float32 when the module is cast to fp16)."""
    return t.detach().float().clone().contiguous()


def _rotate_half_cols(w, rot):
    """rotary-embedding-torch's rotate_half applied to the output columns of a projection weight
    ``w`` [..., rot] (pairs (2i, 2i+1) -> (-x[2i+1], x[2i])): a signed permutation, exact."""
    w2 = w.reshape(*w.shape[:-1], rot // 2, 2)
    return torch.stack((-w2[..., 1], w2[..., 0]), dim=-1).reshape(w.shape)


def _layer_norm(x, size, weight, eps, dtype):
    """LayerNormalization over the last axis (of static ``size``), float32 inside fp16 graphs
    like Fp32Norm. Same formula as upstream's hand-written norms: biased variance, eps inside
    the square root, gain, no bias."""
    y = F.layer_norm(x.float(), (size,), weight, None, eps)
    return y.to(dtype)


# ------------------------------------------------------------------------- temporal attention

class FastTemporalAttention(nn.Module):
    """Replaces ``PreNorm(dim, EinopsToAndFrom('b c f h w', 'b (h w) f c', Attention))`` (the
    ``fn`` of a ``Residual``); forward(x, pos_bias) -> the PreNorm output (the Residual adds x).

    upstream: LayerNorm over c (biased var, eps 1e-5, gain) -> rearrange -> to_qkv -> chunk ->
    split heads -> q * d^-1/2 -> RoPE(q), RoPE(k) -> einsum -> + bias -> - amax -> softmax ->
    einsum -> merge heads -> to_out -> rearrange back."""

    def __init__(self, prenorm, dtype=torch.float32):
        super().__init__()
        attn = prenorm.fn.fn
        norm = prenorm.norm
        self.dtype = dtype
        self.heads = attn.heads
        self.eps = float(norm.eps)
        self.gamma = _const(norm.gamma.reshape(-1))
        self.c = int(self.gamma.numel())
        w = attn.to_qkv.weight.detach().float()                  # [3 * H * d, c]
        hid = w.shape[0] // 3
        self.dh = hid // self.heads
        wq, wk, wv = w[:hid] * attn.scale, w[hid:2 * hid], w[2 * hid:]   # scale folded into q
        rope = attn.rotary_emb
        self.rot = None
        mats = [wq, wk, wv]
        if rope is not None:
            rot = int(rope.freqs.numel() * 2)
            assert rot == self.dh, "RoPE over the whole head expected (rot_dim == dim_head)"
            assert not getattr(rope, "use_xpos", False)
            self.rot = rot
            self.freqs = _const(torch.repeat_interleave(rope.freqs.detach().float(), 2))   # [d]
            self.interpolate_factor = float(rope.interpolate_factor)

            def rh(m):  # rotate_half of every head's output columns
                return _rotate_half_cols(m.t().reshape(-1, self.heads, self.dh), rot).reshape(m.shape[1], -1).t()
            mats = [wq, rh(wq), wk, rh(wk), wv]
        # [c, H * d] weights, kept apart: one GEMM output split by a Split node costs more than
        # separate GEMMs (ONNX Runtime's Split on an inner axis is slow)
        self.w = nn.ParameterList([nn.Parameter(m.t().contiguous(), requires_grad=False) for m in mats])
        self.w_out = nn.Parameter(attn.to_out.weight.detach().t().contiguous(), requires_grad=False)  # [H*d, c]

    def forward(self, x, pos_bias=None, focus_present_mask=None):
        b, c, f, hh, ww = x.shape
        H, d = self.heads, self.dh
        n = b * hh * ww
        # frame-major rows ('f (b h w) c'): the per-frame RoPE weights below need frames as the
        # GEMM batch axis
        xt = x.permute(2, 0, 3, 4, 1).reshape(f, n, c)
        xn = _layer_norm(xt, self.c, self.gamma, self.eps, self.dtype)
        if self.rot:
            pos = torch.arange(f, dtype=torch.float32, device=x.device) / self.interpolate_factor
            ang = pos[:, None] * self.freqs[None, :]                          # [f, d]
            cos, sin = ang.cos(), ang.sin()
            wq, wqr, wk, wkr, wv = self.w
            if c <= hh * ww:
                # RoPE folded into per-frame projection weights:
                # rope(x W)_f = x (W cos_f + rot(W) sin_f): [f, c, H*d], cheaper than the
                # activations when c <= h*w (the high-resolution levels, where the time goes)
                def per_frame(w0, w1):
                    w0 = w0.float().reshape(1, c, H, d)
                    w1 = w1.float().reshape(1, c, H, d)
                    wf = w0 * cos[:, None, None, :] + w1 * sin[:, None, None, :]
                    return wf.reshape(f, c, H * d).to(self.dtype)
                q = torch.matmul(xn, per_frame(wq, wqr))
                k = torch.matmul(xn, per_frame(wk, wkr))
            else:
                cs = cos.to(self.dtype)[:, None, None, :]
                sn = sin.to(self.dtype)[:, None, None, :]
                q = (torch.matmul(xn, wq).reshape(f, n, H, d) * cs
                     + torch.matmul(xn, wqr).reshape(f, n, H, d) * sn)
                k = (torch.matmul(xn, wk).reshape(f, n, H, d) * cs
                     + torch.matmul(xn, wkr).reshape(f, n, H, d) * sn)
        else:
            wq, wk, wv = self.w
            q, k = torch.matmul(xn, wq), torch.matmul(xn, wk)
        v = torch.matmul(xn, wv)
        q = q.reshape(f, n, H, d).permute(1, 2, 0, 3)                        # [n, H, f, d]
        kt = k.reshape(f, n, H, d).permute(1, 2, 3, 0)                       # [n, H, d, f]
        v = v.reshape(f, n, H, d).permute(1, 2, 0, 3)                        # [n, H, f, d]
        sim = torch.matmul(q, kt)                                             # [n, H, f, f]
        if pos_bias is not None:
            sim = sim + pos_bias
        # no "sim - amax": Softmax subtracts the row max itself (same result up to rounding)
        att = sim.softmax(dim=-1)
        out = torch.matmul(att, v)                                            # [n, H, f, d]
        out = out.permute(2, 0, 1, 3).reshape(f, n, H * d)
        y = torch.matmul(out, self.w_out)                                     # [f, n, c]
        return y.reshape(f, b, hh, ww, c).permute(1, 4, 0, 2, 3)             # 'b c f h w'


def temporal_prenorms(unet):
    """(parent Residual, PreNorm) of the U-Net's 10 temporal attentions."""
    out = []
    for m in unet.modules():
        if type(m).__name__ == "Residual" and type(m.fn).__name__ == "PreNorm":
            inner = m.fn.fn
            if (type(inner).__name__ == "EinopsToAndFrom" and inner.from_einops == "b c f h w"
                    and inner.to_einops == "b (h w) f c" and type(inner.fn).__name__ == "Attention"):
                out.append(m)
    return out


# --------------------------------------------------------------------- 2-key cross-attentions

class FastCrossAttention3(nn.Module):
    """The sum ``cross_attn_pose(x, pose) + cross_attn_aud(x, aud) + cross_attn_eye(x, eye)`` of a
    ``ResnetBlock_ca_mul`` (upstream ``CrossAttention``: 8 heads of 8 dims, cosine-similarity
    logits times 8, keys = [null key, the frame's one context token]).

    softmax([s0, s1]) = [1 - p, p] with p = sigmoid(s1 - s0), so out = v0 + p (v1 - v0) and
    s1 - s0 = 8 <q / max(|q|, 1e-12), (k1n - k0n) * k_scale * q_scale> (kn = k / max(|k|, 1e-12)).
    ``to_out``'s Linear of that is c0 + sum_h p_h (v1 - v0)_h W_h: a [heads, out] matrix per frame.
    The three attentions share the normalisation of x (their LayerNorm gains are folded into the
    query weights) and one query GEMM."""

    def __init__(self, atts, dtype=torch.float32):
        super().__init__()
        self.dtype = dtype
        a0 = atts[0]
        self.H = a0.heads
        self.d = a0.null_kv.shape[-1]
        self.c = int(a0.to_q.weight.shape[1])
        self.out = int(atts[0].to_out[0].weight.shape[0])
        wq, wd_k, wkv, nk, nv, wo, c0, g_out, scales = [], [], [], [], [], [], [], [], []
        for a in atts:
            assert type(a.norm_context).__name__ == "Identity"
            assert a.heads == self.H and a.null_kv.shape[-1] == self.d
            assert a.to_out[0].weight.shape[0] == self.out
            g_in = a.norm.g.detach().float()
            wq.append(a.to_q.weight.detach().float() * g_in[None, :])          # [H*d, c]
            wkv.append(_const(a.to_kv.weight))                                  # [2*H*d, ctx]
            nk.append(_const(a.null_kv[0]))
            nv.append(_const(a.null_kv[1]))
            scales.append(_const(a.k_scale * a.q_scale * a.scale))            # [d]
            w = a.to_out[0].weight.detach().float()                            # [out, H*d]
            wo.append(w.reshape(self.out, self.H, self.d).permute(1, 2, 0).contiguous())  # [H, d, out]
            c0.append(w @ a.null_kv[1].detach().float().repeat(self.H))        # [out]: v0 through to_out
            g_out.append(_const(a.to_out[1].g))
            assert not a.to_out[1].stable
        self.eps_in = 1e-5   # LayerNorm_img in float32 (fp16 graphs run norms in float32 too)
        self.w_q = nn.Parameter(torch.cat(wq, 0).t().contiguous(), requires_grad=False)  # [c, 3*H*d]
        self.w_kv, self.null_k, self.null_v, self.kq_scale, self.w_o = wkv, nk, nv, scales, wo
        self.c0 = _const(torch.cat(c0))                                         # [3*out]
        self.g_out = _const(torch.stack(g_out))                                 # [3, out]
        self.n_att = len(atts)

    def forward(self, x, contexts):
        b, c, f, hh, ww = x.shape
        bf, n, A, H, d, o = b * f, hh * ww, self.n_att, self.H, self.d, self.out
        xt = x.permute(0, 2, 3, 4, 1).reshape(bf, n, c)                     # '(b f) (h w) c'
        xn = _layer_norm(xt, self.c, None, self.eps_in, self.dtype)
        q = torch.matmul(xn, self.w_q).reshape(bf, n, A * H, d)              # [bf, n, 3H, d]
        wdiff, mats = [], []
        for i, ctx in enumerate(contexts):       # per frame: tiny tensors, float32
            kv = torch.matmul(ctx.reshape(bf, -1).float(), self.w_kv[i].t())   # [bf, 2*H*d]
            k1 = F.normalize(kv[:, :H * d].reshape(bf, H, d), dim=-1)
            k0 = F.normalize(self.null_k[i], dim=-1)
            wdiff.append((k1 - k0) * self.kq_scale[i])                          # [bf, H, d]
            dv = kv[:, H * d:].reshape(bf, H, 1, d) - self.null_v[i]           # [bf, H, 1, d]
            mats.append(torch.matmul(dv, self.w_o[i]).reshape(bf, H, o))       # [bf, H, out]
        wdiff = torch.cat(wdiff, 1).to(self.dtype)                               # [bf, 3H, d]
        # block-diagonal [bf, 3H, 3*out]: attention i's p only reaches its own to_out (the zero
        # blocks add exact zeros)
        zero = torch.zeros_like(mats[0])
        mblk = torch.cat([torch.cat([m if j == i else zero for j in range(A)], 2)
                          for i, m in enumerate(mats)], 1).to(self.dtype)
        num = (q * wdiff[:, None]).sum(-1)                                      # [bf, n, 3H]
        den = torch.sqrt((q * q).sum(-1)).clamp_min(1e-12)                      # F.normalize's |q|
        p = torch.sigmoid(num / den)
        lin = torch.matmul(p, mblk) + self.c0.to(self.dtype)                  # [bf, n, 3*out]
        y = _layer_norm(lin.reshape(bf, n, A, o), o, None, 1e-5, self.dtype)
        y = (y * self.g_out.to(self.dtype)).sum(2)                             # [bf, n, out]
        return y.reshape(b, f, hh, ww, o).permute(0, 4, 1, 2, 3)               # 'b c f h w'


def _ca_mul_forward(self, x, time_emb=None, audio_emb=None):
    """``ResnetBlock_ca_mul.forward`` with the fused cross-attentions (same order of the rest)."""
    A, P = self.audio_emb_dim, self.pose_emb_dim
    pose_emb = audio_emb[:, :, A:A + P]
    eye_emb = audio_emb[:, :, A + P:]
    aud_emb = audio_emb[:, :, :A]
    t = self.time_mlp(time_emb)
    t = t.reshape(*t.shape, 1, 1, 1)
    time_scale_shift = t.chunk(2, dim=1)
    ctx = [self.pose_mlp(pose_emb), self.audio_mlp(aud_emb), self.eye_mlp(eye_emb)]
    h_cond = self.fast_cross_attn(x, ctx)
    h = self.block1(x, time_scale_shift=time_scale_shift)
    h = h_cond + h
    h = self.block2(h)
    return h + self.res_conv(x)


def patch_cross_attention(unet, dtype=torch.float32):
    """Every ResnetBlock_ca_mul of the U-Net: fused 2-key cross-attentions. Returns the count."""
    import types

    n = 0
    for m in unet.modules():
        if type(m).__name__ == "ResnetBlock_ca_mul" and m.time_mlp is not None and m.audio_mlp is not None:
            atts = [m.cross_attn_pose, m.cross_attn_aud, m.cross_attn_eye]   # upstream's sum order
            m.fast_cross_attn = FastCrossAttention3(atts, dtype)
            del m.cross_attn_pose, m.cross_attn_aud, m.cross_attn_eye
            m.forward = types.MethodType(_ca_mul_forward, m)
            n += 1
    return n


def patch_temporal_attention(unet, dtype=torch.float32):
    """The U-Net's dense temporal attentions -> FastTemporalAttention. Returns the count."""
    res = temporal_prenorms(unet)
    for r in res:
        r.fn = FastTemporalAttention(r.fn, dtype)
    return len(res)


# ------------------------------------------------------------------ spatial linear attention

class FastSpatialLinearAttention(nn.Module):
    """Replaces ``PreNorm(dim, SpatialLinearAttention)`` (the ``fn`` of a ``Residual``).

    upstream, per frame: LayerNorm over c -> 1x1 conv to q, k, v ([heads, d, h*w]) -> softmax of
    q over d, of k over positions -> q * scale -> ctx = k v^T [heads, d, e] -> out = ctx^T q ->
    1x1 conv (bias). Here, channels-last per frame: q = softmax_d(xn Wq) [n, heads*d];
    ctx as upstream (k transposed once); then ``to_out`` is folded into a per-frame matrix
    G[(h d), c] = scale * sum_e ctx[h, d, e] Wo[c, (h e)], so y = q G + bias: one GEMM instead of
    two GEMMs and two transposes (all the same sums, reassociated)."""

    def __init__(self, prenorm, dtype=torch.float32):
        super().__init__()
        attn = prenorm.fn
        norm = prenorm.norm
        self.dtype = dtype
        self.H = attn.heads
        self.eps = float(norm.eps)
        self.gamma = _const(norm.gamma.reshape(-1))
        self.c = int(self.gamma.numel())
        w = attn.to_qkv.weight.detach()[:, :, 0, 0]                        # [3 * H * d, c]
        hid = w.shape[0] // 3
        self.d = hid // self.H
        self.w_q = nn.Parameter(w[:hid].t().contiguous(), requires_grad=False)
        self.w_k = nn.Parameter(w[hid:2 * hid].t().contiguous(), requires_grad=False)
        self.w_v = nn.Parameter(w[2 * hid:].t().contiguous(), requires_grad=False)
        wo = attn.to_out.weight.detach()[:, :, 0, 0] * attn.scale             # [c, H*e], scale folded
        self.w_o = nn.Parameter(wo.reshape(self.c, self.H, self.d).permute(1, 2, 0).contiguous(),
                                requires_grad=False)                          # [H, e, c]
        self.b_o = nn.Parameter(attn.to_out.bias.detach().clone(), requires_grad=False)

    def forward(self, x):
        b, c, f, hh, ww = x.shape
        bf, n, H, d = b * f, hh * ww, self.H, self.d
        xt = x.permute(0, 2, 3, 4, 1).reshape(bf, n, c)                     # '(b f) (x y) c'
        xn = _layer_norm(xt, self.c, self.gamma, self.eps, self.dtype)
        q = torch.matmul(xn, self.w_q).reshape(bf, n, H, d).softmax(dim=-1).reshape(bf, n, H * d)
        kt = torch.matmul(xn, self.w_k).transpose(1, 2).reshape(bf, H, d, n).softmax(dim=-1)
        v = torch.matmul(xn, self.w_v).reshape(bf, n, H, d).permute(0, 2, 1, 3)   # [bf, H, n, e]
        ctx = torch.matmul(kt, v)                                                # [bf, H, d, e]
        g = torch.matmul(ctx, self.w_o).reshape(bf, H * d, c)                    # [bf, H*d, c]
        y = torch.matmul(q, g) + self.b_o                                        # [bf, n, c]
        return y.reshape(b, f, hh, ww, c).permute(0, 4, 1, 2, 3)               # 'b c f h w'


def patch_spatial_linear_attention(unet, dtype=torch.float32):
    """The U-Net's Residual(PreNorm(SpatialLinearAttention)) -> FastSpatialLinearAttention."""
    n = 0
    for m in unet.modules():
        if (type(m).__name__ == "Residual" and type(m.fn).__name__ == "PreNorm"
                and type(m.fn.fn).__name__ == "SpatialLinearAttention"):
            m.fn = FastSpatialLinearAttention(m.fn, dtype)
            n += 1
    return n
