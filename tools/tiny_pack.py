#!/usr/bin/env python3
"""Generates the tiny gst-dawn test model packs (tests/models/tiny64, tests/models/tiny128).

The packs follow the model-pack contract (docs/model-pack.md) exactly: same file names, input and
output names, fixed dimensions and symbolic axes (T, Th, N, F) as a real DAWN export, all float32.
The graphs are NOT DAWN: they are small hand-designed functions with synthetic (untrained, seeded)
weights, built so that

* every input visibly changes the output (tests catch a host that feeds the wrong frame's
  condition, the wrong timestep, a transposed flow, the wrong noise, ...);
* the denoiser is a closed-form "oracle" (the exact posterior-mean denoiser of a Gaussian prior
  around a condition-dependent target latent), so the host's DDIM sampler converges to a
  meaningful latent: an identity sampling grid plus a small condition-driven displacement;
* the decoder really warps the portrait (Resize + GridSample), so decoded frames look like it.

Usage:  .venv/bin/python tools/tiny_pack.py --out tests/models

Only onnx and numpy are needed. The output is deterministic: re-running writes byte-identical files
(fixed seeds, float64 maths rounded to float32, no timestamps).
"""

from __future__ import annotations

import argparse
import json
import math
import zlib
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

# Bump when the graphs or the manifest change (written to provenance.tool).
GENERATOR_VERSION = "1"
SEED = 20261125
# ONNX Runtime 1.31 accepts IR <= 13 while onnx 1.23 writes 14 by default.
# IR 8 + opset 17 is proven there; GridSample needs opset >= 16.
IR_VERSION = 8
OPSET = 17

# The packs to generate: directory name -> (resolution S, static channel count Cs).
PACKS = {"tiny64": (64, 8), "tiny128": (128, 8)}

# Contract constants (docs/model-pack.md). The denoiser bakes the schedule constants in, so they are
# defined once here and written to the manifest from the same values.
FEATURE_DIM = 1024
NOISE_DIM = 256
POSE_DIM = 6
EYE_DIM = 2
COND_DIM = FEATURE_DIM + POSE_DIM + EYE_DIM
HOP = 320
WINDOW = 400
SAMPLE_RATE = 16000
TRAIN_TIMESTEPS = 1000
COSINE_S = 0.008
ATTENTION_WINDOW = 40
POSE_MIN = [-90, -90, -90, 0, 0, 0]
POSE_MAX = [90, 90, 90, 1, 720, 1080]

# Fixed so that the manifest is reproducible; it names the generator version, not a build time.
CREATED = "2026-11-25T00:00:00Z"

# Tiny-model design constants (see the graph functions for what they do).
PBNET_POSE_AMP = 0.02  # pose delta in normalised units: x180 -> about +-3.6 degrees
PBNET_BLINK_AMP = 0.05  # eye-ratio delta, raw units
PBNET_DECAY = 0.5  # temporal smoothing of PBNet outputs: weight exp(-0.5 |i - j|)
PBNET_WINDOW = 200  # DAWN's PBNet band (+-200 frames)
DENOISER_DECAY = 2.0  # temporal coupling in the denoiser: weight exp(-2 |i - j|), own frame ~76 %
PRIOR_STD = 0.03  # std of the Gaussian prior around the target latent (makes x_T / z noise matter)
OCC_LATENT = 0.6  # latent channel 2 = occ * 2 - 1, i.e. occlusion 0.8 (mostly "copy the portrait")

# Motion coefficients the denoiser derives from each frame's condition, with their amplitude (the
# largest displacement they cause, in grid units of [-1, 1]).
MOTIONS = [
    ("mouth_open", 0.05),  # audio -> vertical stretch around the mouth (lower half)
    ("mouth_wide", 0.03),  # audio -> horizontal stretch around the mouth
    ("shift_x", 0.03),  # yaw (degrees) and tx (pixels)
    ("shift_y", 0.03),  # pitch (degrees) and ty (pixels)
    ("rotate", 0.04),  # roll (degrees)
    ("zoom", 0.03),  # 3DMM scale
    ("eye_left", 0.04),  # eye-ratio delta, left eye (upper third)
    ("eye_right", 0.04),  # eye-ratio delta, right eye
]


def rng_for(role: str) -> np.random.Generator:
    """One generator per graph role, so changing one graph never changes another one's weights,
    and resolution-independent graphs are identical in both packs."""
    return np.random.default_rng([SEED, zlib.crc32(role.encode())])


def f32(a) -> np.ndarray:
    return np.asarray(a, dtype=np.float64).astype(np.float32)


class Graph:
    """A thin wrapper over onnx.helper that names nodes and initializers uniquely."""

    def __init__(self, name: str):
        self.name = name
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.inputs: list[onnx.ValueInfoProto] = []
        self.outputs: list[onnx.ValueInfoProto] = []
        self._n = 0

    def _fresh(self, hint: str) -> str:
        self._n += 1
        return f"{hint}_{self._n}"

    def input(self, name: str, shape: list) -> str:
        self.inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, shape))
        return name

    def output(self, name: str, shape: list) -> None:
        self.outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, shape))

    def const(self, value, hint: str = "c", dtype=np.float32) -> str:
        name = self._fresh(hint)
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def ints(self, value, hint: str = "i") -> str:
        return self.const(value, hint, np.int64)

    def op(self, op_type: str, *inputs: str, out: str | None = None, n_out: int = 1, **attrs):
        outs = [out] if out else [self._fresh(op_type.lower()) for _ in range(n_out)]
        self.nodes.append(helper.make_node(op_type, list(inputs), outs, name=self._fresh("n_" + op_type), **attrs))
        return outs[0] if n_out == 1 else outs

    def model(self, doc: str) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, self.name, self.inputs, self.outputs, self.inits)
        model = helper.make_model(
            graph,
            opset_imports=[helper.make_opsetid("", OPSET)],
            producer_name="gst-dawn tiny_pack",
            producer_version=GENERATOR_VERSION,
            doc_string=doc,
        )
        model.ir_version = IR_VERSION
        onnx.checker.check_model(model, full_check=True)
        return model


def band_weights(g: Graph, n: str, decay: float, window: int) -> str:
    """[n, n] row-stochastic temporal weights softmax(-decay |i - j|) with |i - j| > window masked
    out, built from the runtime length `n` (int64 scalar) so any sequence length works. This is the
    tiny stand-in for DAWN's banded temporal attention; the mask makes frames farther apart than
    `window` exactly independent."""
    nf = g.op("Cast", n, to=TensorProto.FLOAT)
    idx = g.op("Range", g.const(0.0), nf, g.const(1.0))
    col = g.op("Unsqueeze", idx, g.ints([1]))
    row = g.op("Unsqueeze", idx, g.ints([0]))
    dist = g.op("Abs", g.op("Sub", col, row))
    logits = g.op("Mul", dist, g.const(-decay))
    outside = g.op("Greater", dist, g.const(float(window)))
    masked = g.op("Where", outside, g.const(-1e9), logits)
    return g.op("Softmax", masked, axis=1)


def dim(g: Graph, tensor: str, axis: int) -> str:
    """Runtime size of one axis as an int64 scalar."""
    return g.op("Squeeze", g.op("Shape", tensor, start=axis, end=axis + 1), g.ints([0]))


# ---------------------------------------------------------------------------------------------
# audio_encoder: input_values [1, T] -> last_hidden_state [1, Th, 1024], Th = floor((T - 80) / 320)
# ---------------------------------------------------------------------------------------------

BAND_HZ = [150, 300, 500, 800, 1250, 2000, 3150, 5000]
# Features 0..15 are soft loudness detectors: tanh(0.1 (L - c_j)) of the frame's total centred log
# band energy L at 16 thresholds c_j; the denoiser opens the mouth with their mean. L is about -42
# for silence and spans about -22 (quiet) to -5 (loud) over the voiced frames of a speech recording
# normalised to unit variance.
LOUDNESS_FEATURES = 16
LOUDNESS_THRESHOLDS = np.linspace(-36.0, 0.0, LOUDNESS_FEATURES)
LOUDNESS_SLOPE = 0.1
QUIET_LOUDNESS, LOUD_LOUDNESS = -22.0, -5.0
ENERGY_SHIFT = -math.log(2.0)  # centres log band energy for unit-variance white noise (E ~ 2)


def audio_weights() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The audio encoder's weights: filterbank [16, 1, 400], pair sums [8, 16, 1], projection
    [8, 1024] and bias [1024]. Features 0..15 are the loudness detectors the denoiser's mouth reads."""
    rng = rng_for("audio_encoder")
    n = np.arange(WINDOW)
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * (n + 0.5) / WINDOW)
    filters = []
    for hz in BAND_HZ:
        for trig in (np.cos, np.sin):
            f = hann * trig(2 * np.pi * hz * n / SAMPLE_RATE)
            filters.append(f / np.linalg.norm(f))  # unit gain for white noise
    pair = np.zeros((len(BAND_HZ), 2 * len(BAND_HZ), 1))
    for b in range(len(BAND_HZ)):
        pair[b, 2 * b, 0] = pair[b, 2 * b + 1, 0] = 1.0
    proj = rng.standard_normal((len(BAND_HZ), FEATURE_DIM)) * (0.6 / math.sqrt(len(BAND_HZ)))
    bias = rng.standard_normal(FEATURE_DIM) * 0.2
    proj[:, :LOUDNESS_FEATURES] = LOUDNESS_SLOPE
    bias[:LOUDNESS_FEATURES] = -LOUDNESS_SLOPE * LOUDNESS_THRESHOLDS
    return np.stack(filters)[:, None, :], pair, proj, bias


def loudness(level: float) -> float:
    """Mean of the loudness features for a total centred log band energy `level`."""
    return float(np.mean(np.tanh(LOUDNESS_SLOPE * (level - LOUDNESS_THRESHOLDS))))


def audio_encoder() -> onnx.ModelProto:
    """A log band-energy filterbank (the stand-in for HuBERT's conv front end + transformer):
    a stride-320, 400-tap Conv1d with Hann-windowed cosine/sine pairs at 8 centre frequencies gives
    exactly HuBERT's frame count; squared and summed per pair, it is a phase-free band energy; its
    log goes through an 8 -> 1024 projection and Tanh: features 0..15 are loudness detectors
    (see LOUDNESS_*), the others random mixtures. Different audio -> different features; feature
    frame j depends only on samples [320 j, 320 j + 400)."""
    g = Graph("audio_encoder")
    x = g.input("input_values", [1, "T"])
    w_fb, pair, proj, bias = audio_weights()

    x3 = g.op("Unsqueeze", x, g.ints([1]))  # [1, 1, T]
    resp = g.op("Conv", x3, g.const(f32(w_fb), "filterbank"), kernel_shape=[WINDOW], strides=[HOP])
    energy = g.op("Conv", g.op("Mul", resp, resp), g.const(f32(pair), "pairs"), g.const(f32([1e-2] * 8)), kernel_shape=[1])
    loge = g.op("Add", g.op("Log", energy), g.const(f32(ENERGY_SHIFT)))
    feats = g.op("Transpose", loge, perm=[0, 2, 1])  # [1, Th, 8]
    hidden = g.op("Add", g.op("MatMul", feats, g.const(f32(proj), "proj")), g.const(f32(bias), "bias"))
    g.op("Tanh", hidden, out="last_hidden_state")
    g.output("last_hidden_state", [1, "Th", FEATURE_DIM])
    return g.model("tiny test audio encoder (log filterbank + random projection), synthetic weights")


# ---------------------------------------------------------------------------------------------
# pbnet_pose / pbnet_blink: init_state [1,1,D], z [N,1,256], audio [1,N,1024] -> delta [1,N,D]
# ---------------------------------------------------------------------------------------------


def pbnet(role: str, d: int, amp: float) -> onnx.ModelProto:
    """delta[f] = amp * tanh(sum_j W[f, j] h[j]) with h[j] = z[j] Wz + audio[j] Wa + init Wi + b and
    W the banded temporal smoothing (so outputs move smoothly, like PBNet's, and depend on the
    window's neighbouring frames)."""
    rng = rng_for(role)
    g = Graph(role)
    init = g.input("init_state", [1, 1, d])
    z = g.input("z", ["N", 1, NOISE_DIM])
    audio = g.input("audio", [1, "N", FEATURE_DIM])
    wz = rng.standard_normal((NOISE_DIM, d)) * (0.7 / math.sqrt(NOISE_DIM))
    wa = rng.standard_normal((FEATURE_DIM, d)) * (1.0 / math.sqrt(FEATURE_DIM))
    wi = rng.standard_normal((d, d)) * 0.8
    b = rng.standard_normal(d) * 0.1

    z3 = g.op("Reshape", z, g.ints([1, -1, NOISE_DIM]))  # [1, N, 256]
    h = g.op("Add", g.op("MatMul", z3, g.const(f32(wz), "wz")), g.op("MatMul", audio, g.const(f32(wa), "wa")))
    h = g.op("Add", h, g.op("Add", g.op("MatMul", init, g.const(f32(wi), "wi")), g.const(f32(b), "b")))
    w = band_weights(g, dim(g, audio, 1), PBNET_DECAY, PBNET_WINDOW)
    smooth = g.op("MatMul", w, h)  # [N, N] x [1, N, D] -> [1, N, D]
    g.op("Mul", g.op("Tanh", smooth), g.const(f32(amp)), out="delta")
    g.output("delta", [1, "N", d])
    return g.model(f"tiny test {role} (per-frame projection + temporal smoothing), synthetic weights")


# ---------------------------------------------------------------------------------------------
# portrait_encoder: src_img [1,3,S,S], face_mask [1,1,S,S] -> skip0, skip1, feat, static
# ---------------------------------------------------------------------------------------------


def portrait_encoder(res: int, cs: int) -> onnx.ModelProto:
    """A cheap LFG-encoder stand-in. skip0 = ReLU(3x3 conv) whose channels 0-2 are the RGB image
    itself; skip1 / feat = ReLU(grouped 1x1 conv of a 2x2 average pool), two output channels per
    input channel, the first copy of each RGB channel kept exact (skip1 channels 0, 2, 4 and feat
    channels 0, 4, 8 are the pooled image, which the decoder's inpainting branch uses).
    static = [face-mask density (2 m - 1), tanh(1x1 conv of feat and the mask)], so it depends on
    both inputs."""
    rng = rng_for("portrait_encoder")
    g = Graph("portrait_encoder")
    s = res // 4
    img = g.input("src_img", [1, 3, res, res])
    mask = g.input("face_mask", [1, 1, res, res])

    w0 = rng.standard_normal((64, 3, 3, 3)) * 0.4
    b0 = rng.standard_normal(64) * 0.1
    w0[:3] = 0.0
    b0[:3] = 0.0
    for c in range(3):
        w0[c, c, 1, 1] = 1.0
    w1 = rng.uniform(0.5, 1.5, (128, 1, 1, 1))
    b1 = rng.standard_normal(128) * 0.1
    w2 = rng.uniform(0.5, 1.5, (256, 1, 1, 1))
    b2 = rng.standard_normal(256) * 0.1
    for c in range(3):  # keep exact copies of the image through the pyramid
        w1[2 * c], b1[2 * c] = 1.0, 0.0  # skip1 channel 2c <- skip0 channel c
        w2[4 * c], b2[4 * c] = 1.0, 0.0  # feat channel 4c <- skip1 channel 2c
    ws = rng.standard_normal((cs - 1, 257, 1, 1)) * (2.0 / math.sqrt(257))
    ws[:, 256, 0, 0] = rng.choice([-1.5, 1.5], cs - 1)
    bs = rng.standard_normal(cs - 1) * 0.1

    skip0 = g.op("Relu", g.op("Conv", img, g.const(f32(w0), "w0"), g.const(f32(b0), "b0"), pads=[1, 1, 1, 1]), out="skip0")
    pool0 = g.op("AveragePool", skip0, kernel_shape=[2, 2], strides=[2, 2])
    skip1 = g.op("Relu", g.op("Conv", pool0, g.const(f32(w1), "w1"), g.const(f32(b1), "b1"), group=64), out="skip1")
    pool1 = g.op("AveragePool", skip1, kernel_shape=[2, 2], strides=[2, 2])
    feat = g.op("Relu", g.op("Conv", pool1, g.const(f32(w2), "w2"), g.const(f32(b2), "b2"), group=128), out="feat")
    mask_s = g.op("AveragePool", mask, kernel_shape=[4, 4], strides=[4, 4])  # [1, 1, s, s]
    density = g.op("Sub", g.op("Mul", mask_s, g.const(f32(2.0))), g.const(f32(1.0)))
    mixed = g.op("Tanh", g.op("Conv", g.op("Concat", feat, mask_s, axis=1), g.const(f32(ws), "ws"), g.const(f32(bs), "bs")))
    g.op("Concat", density, mixed, axis=1, out="static")
    g.output("skip0", [1, 64, res, res])
    g.output("skip1", [1, 128, res // 2, res // 2])
    g.output("feat", [1, 256, s, s])
    g.output("static", [1, cs, s, s])
    return g.model("tiny test portrait encoder (LFG-encoder-shaped pyramid), synthetic weights")


# ---------------------------------------------------------------------------------------------
# denoiser: x_t [1,3,F,s,s], static [1,Cs,s,s], timestep [1], cond [1,F,1032] -> eps [1,3,F,s,s]
# ---------------------------------------------------------------------------------------------


def identity_grid(s: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates in [-1, 1] (GridSample, align_corners=0): x = column, y = row."""
    c = (2 * np.arange(s) + 1) / s - 1
    y, x = np.meshgrid(c, c, indexing="ij")
    return x, y


def motion_bases(s: int) -> np.ndarray:
    """[K, 3, s, s] displacement fields (flow x, flow y, occlusion latent), one per motion
    coefficient, each scaled so its largest magnitude is 1 (the amplitude lives in MOTIONS)."""
    x, y = identity_grid(s)
    zero = np.zeros_like(x)
    mouth = np.exp(-((x / 0.3) ** 2) - ((y - 0.45) / 0.2) ** 2)

    def eye(cx):
        return np.exp(-(((x - cx) / 0.18) ** 2) - ((y + 0.45) / 0.12) ** 2)

    def unit(field):
        peak = np.max(np.abs(field))
        return field / peak if peak > 0 else field

    fields = {
        # open mouth: the region below/above the mouth centre samples towards it (a vertical
        # stretch) and the occlusion drops inside it (the decoder "inpaints" the open mouth)
        "mouth_open": [zero, unit(-(y - 0.45) * mouth), -mouth],
        "mouth_wide": [unit(-x * mouth), zero, zero],
        "shift_x": [np.ones_like(x), zero, zero],
        "shift_y": [zero, np.ones_like(x), zero],
        "rotate": [-y, x, zero],
        "zoom": [-x, -y, zero],
        "eye_left": [zero, eye(-0.35), -0.5 * eye(-0.35)],
        "eye_right": [zero, eye(0.35), -0.5 * eye(0.35)],
    }
    return np.stack([np.stack(fields[name]) for name, _ in MOTIONS])


def cond_projection(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """[1032, K] weights and [K] biases: how each condition element drives the motion coefficients
    (before tanh). The mouth opens with loudness: it reads the mean of the audio encoder's loudness
    features, scaled so that quiet speech gives tanh(-0.3) and loud speech tanh(1.2) (silence:
    closed, about -1). The width follows a random audio direction. Pose and eye deltas drive the
    rest with their raw units scaled to ~1 (degrees / 4, pixels / 15-20, scale / 0.02, eye ratio /
    0.05), so a host that forgets the raw-unit conversion gets a visibly different latent."""
    k = {name: i for i, (name, _) in enumerate(MOTIONS)}
    w = np.zeros((COND_DIM, len(MOTIONS)))
    b = np.zeros(len(MOTIONS))
    quiet, loud = loudness(QUIET_LOUDNESS), loudness(LOUD_LOUDNESS)
    gain = 1.5 / (loud - quiet)
    w[:LOUDNESS_FEATURES, k["mouth_open"]] = gain / LOUDNESS_FEATURES
    b[k["mouth_open"]] = -0.3 - gain * quiet
    v = rng.standard_normal(FEATURE_DIM)
    w[:FEATURE_DIM, k["mouth_wide"]] = 1.5 * v / np.linalg.norm(v)
    yaw, pitch, roll, scale, tx, ty = range(FEATURE_DIM, FEATURE_DIM + POSE_DIM)
    w[yaw, k["shift_x"]] = 1 / 4
    w[tx, k["shift_x"]] = 1 / 15
    w[pitch, k["shift_y"]] = 1 / 4
    w[ty, k["shift_y"]] = 1 / 20
    w[roll, k["rotate"]] = 1 / 4
    w[scale, k["zoom"]] = 1 / 0.02
    w[FEATURE_DIM + POSE_DIM, k["eye_left"]] = 1 / 0.05
    w[FEATURE_DIM + POSE_DIM + 1, k["eye_right"]] = 1 / 0.05
    return w, b


def denoiser(res: int, cs: int) -> onnx.ModelProto:
    """An oracle epsilon-predictor.

    Target latent per frame f:  x0*[f] = base + gate * sum_k c_k[f] B_k + small(static), where base
    is the identity grid with occlusion latent 0.6, B_k the motion bases, c_k[f] = amp_k tanh(...)
    the motion coefficients from frame f's condition (smoothed over neighbouring frames with the
    banded weights, |i - j| <= attention_window), gate = 0.75 + 0.25 * face-mask density (static
    channel 0), and small(static) = 0.01 tanh(1x1 conv of static).

    The prior is x0 ~ N(x0*, PRIOR_STD^2); for it the exact posterior-mean denoiser at noise level
    abar is x0_hat = x0* + g r with r = x_t - sqrt(abar) x0*, g = sqrt(abar) p / (abar p + 1 - abar),
    p = PRIOR_STD^2. Here r is also smoothed over frames with the banded weights (no longer exactly
    Bayes-optimal, but context frames pinned by the host then influence their neighbours). eps = (x_t - sqrt(abar) x0_hat) / sqrt(1 - abar). abar is the cosine schedule
    evaluated in the graph: abar(t) = f(t + 1) / f(0), f(u) = cos((u / T + s) / (1 + s) * pi / 2)^2,
    equal to the host's cumulative product except where max_beta clips (t = 999 only). DDIM with this
    denoiser lands close to x0*, and the residual depends on the noise, the timestep and x_t."""
    rng = rng_for("denoiser")
    g = Graph("denoiser")
    s = res // 4
    ss = s * s
    kk = len(MOTIONS)
    x_t = g.input("x_t", [1, 3, "F", s, s])
    static = g.input("static", [1, cs, s, s])
    timestep = g.input("timestep", [1])
    cond = g.input("cond", [1, "F", COND_DIM])

    gx, gy = identity_grid(s)
    base = np.stack([gx, gy, np.full_like(gx, OCC_LATENT)])[None, :, None]  # [1, 3, 1, s, s]
    bases = motion_bases(s).reshape(kk, 3 * ss)
    amps = np.array([a for _, a in MOTIONS])
    w_static = rng.standard_normal((3, cs, 1, 1)) * (1.0 / math.sqrt(cs))

    # Motion coefficients per frame, smoothed over the band: [1, F, K].
    band = band_weights(g, dim(g, cond, 1), DENOISER_DECAY, ATTENTION_WINDOW)
    w_cond, b_cond = cond_projection(rng)
    pre = g.op("Add", g.op("MatMul", cond, g.const(f32(w_cond), "cond_proj")), g.const(f32(b_cond), "cond_bias"))
    coef = g.op("Mul", g.op("Tanh", g.op("MatMul", band, pre)), g.const(f32(amps), "amps"))
    # Displacement fields: [1, F, K] x [K, 3 s s] -> [1, F, 3, s, s] -> [1, 3, F, s, s].
    disp = g.op("MatMul", coef, g.const(f32(bases), "bases"))
    disp = g.op("Transpose", g.op("Reshape", disp, g.ints([1, -1, 3, s, s])), perm=[0, 2, 1, 3, 4])
    # Face-region gate and static detail, both constant over frames: [1, 1|3, 1, s, s].
    density = g.op("Slice", static, g.ints([0]), g.ints([1]), g.ints([1]))
    gate = g.op("Add", g.op("Mul", density, g.const(f32(0.25))), g.const(f32(0.75)))
    detail = g.op("Mul", g.op("Tanh", g.op("Conv", static, g.const(f32(w_static), "w_static"))), g.const(f32(0.01)))
    target = g.op("Add", g.op("Add", g.const(f32(base), "base"), g.op("Mul", disp, g.op("Unsqueeze", gate, g.ints([2])))), g.op("Unsqueeze", detail, g.ints([2])))

    # Cosine schedule in the graph.
    def f_of(u):
        return g.op("Pow", g.op("Cos", g.op("Mul", g.op("Add", g.op("Div", u, g.const(f32(TRAIN_TIMESTEPS))), g.const(f32(COSINE_S))), g.const(f32(math.pi / 2 / (1 + COSINE_S))))), g.const(f32(2.0)))

    f0 = math.cos(COSINE_S / (1 + COSINE_S) * math.pi / 2) ** 2
    abar = g.op("Clip", g.op("Div", f_of(g.op("Add", timestep, g.const(f32([1.0])))), g.const(f32(f0))), g.const(f32(0.0)), g.const(f32(1.0)))
    sqrt_abar = g.op("Sqrt", abar)
    one_minus = g.op("Max", g.op("Sub", g.const(f32(1.0)), abar), g.const(f32(1e-6)))
    prior = PRIOR_STD**2
    gain = g.op("Div", g.op("Mul", sqrt_abar, g.const(f32(prior))), g.op("Add", g.op("Mul", abar, g.const(f32(prior))), one_minus))

    r = g.op("Sub", x_t, g.op("Mul", sqrt_abar, target))  # [1, 3, F, s, s]
    r_smooth = g.op("MatMul", band, g.op("Reshape", r, g.ints([3, -1, ss])))  # [F, F] x [3, F, ss]
    r_smooth = g.op("Reshape", r_smooth, g.ints([1, 3, -1, s, s]))
    num = g.op("Sub", r, g.op("Mul", g.op("Mul", sqrt_abar, gain), r_smooth))
    g.op("Div", num, g.op("Sqrt", one_minus), out="eps")
    g.output("eps", [1, 3, "F", s, s])
    return g.model("tiny test denoiser (Gaussian-prior oracle around a condition-driven grid), synthetic weights")


# ---------------------------------------------------------------------------------------------
# decoder: src_img, skip0, skip1, feat (batch 1) + flow [F,s,s,2], occlusion [F,1,s,s]
#          -> frames [F,3,S,S]
# ---------------------------------------------------------------------------------------------


def decoder(res: int) -> onnx.ModelProto:
    """LFG-decoder-shaped: flow and occlusion are upsampled with linear/half-pixel Resize, the
    portrait is warped with GridSample (bilinear, zeros, align_corners=0), and an "inpainting"
    image is made from skip0 / skip1 / feat, each reduced to 3 channels by a 1x1 conv, warped at
    its own resolution, upsampled and summed before a Sigmoid (the convs mostly pick the pyramid's
    image copies, so the inpainting is a blurred, contrast-stretched portrait with some texture).
    frames = clip(warped * occ + inpaint * (1 - occ), 0, 1)."""
    rng = rng_for("decoder")
    g = Graph("decoder")
    s = res // 4
    img = g.input("src_img", [1, 3, res, res])
    skip0 = g.input("skip0", [1, 64, res, res])
    skip1 = g.input("skip1", [1, 128, res // 2, res // 2])
    feat = g.input("feat", [1, 256, s, s])
    flow = g.input("flow", ["F", s, s, 2])
    occ = g.input("occlusion", ["F", 1, s, s])

    def inpaint_weights(channels: int, image_channels: list[int]) -> np.ndarray:
        w = rng.standard_normal((3, channels, 1, 1)) * 0.03
        for c, src in enumerate(image_channels):
            w[c, src] = 4.0 / 3.0  # the three levels sum to 4 x image
        return f32(w)

    n_frames = g.op("Shape", flow, start=0, end=1)

    def expand(t: str, channels: int, side: int) -> str:
        return g.op("Expand", t, g.op("Concat", n_frames, g.ints([channels, side, side]), axis=0))

    def grid_at(factor: int) -> str:
        nchw = g.op("Transpose", flow, perm=[0, 3, 1, 2])
        up = g.op("Resize", nchw, "", g.const(f32([1, 1, factor, factor])), mode="linear", coordinate_transformation_mode="half_pixel")
        return g.op("Transpose", up, perm=[0, 2, 3, 1])

    def upsample(t: str, factor: int) -> str:
        return g.op("Resize", t, "", g.const(f32([1, 1, factor, factor])), mode="linear", coordinate_transformation_mode="half_pixel")

    def warp(t: str, grid: str) -> str:
        return g.op("GridSample", t, grid, mode="bilinear", padding_mode="zeros", align_corners=0)

    # 1x1 convs commute with bilinear warping, so reduce to 3 channels before expanding to F frames.
    i0 = g.op("Conv", skip0, g.const(inpaint_weights(64, [0, 1, 2]), "wi0"))
    i1 = g.op("Conv", skip1, g.const(inpaint_weights(128, [0, 2, 4]), "wi1"))
    i2 = g.op("Conv", feat, g.const(inpaint_weights(256, [0, 4, 8]), "wi2"))
    full = warp(expand(g.op("Concat", img, i0, axis=1), 6, res), grid_at(4))  # [F, 6, S, S]
    warped, w0 = g.op("Split", full, g.ints([3, 3]), axis=1, n_out=2)
    w1 = upsample(warp(expand(i1, 3, res // 2), grid_at(2)), 2)
    w2 = upsample(warp(expand(i2, 3, s), flow), 4)
    logit = g.op("Add", g.op("Add", w0, w1), g.op("Add", w2, g.const(f32(-2.0))))
    inpaint = g.op("Sigmoid", logit)
    m = upsample(occ, 4)  # [F, 1, S, S]
    blend = g.op("Add", g.op("Mul", warped, m), g.op("Mul", inpaint, g.op("Sub", g.const(f32(1.0)), m)))
    g.op("Clip", blend, g.const(f32(0.0)), g.const(f32(1.0)), out="frames")
    g.output("frames", ["F", 3, res, res])
    return g.model("tiny test decoder (Resize + GridSample warp of the portrait, blended inpainting), synthetic weights")


# ---------------------------------------------------------------------------------------------
# manifest and driver
# ---------------------------------------------------------------------------------------------

GRAPH_FILES = {
    "audio_encoder": "audio_encoder.onnx",
    "pbnet_pose": "pbnet_pose.onnx",
    "pbnet_blink": "pbnet_blink.onnx",
    "portrait_encoder": "portrait_encoder.onnx",
    "denoiser": "denoiser.onnx",
    "decoder": "decoder.onnx",
}


def manifest(res: int, cs: int) -> dict:
    return {
        "format": "gst-dawn-model-pack",
        "version": 1,
        "name": f"gst-dawn tiny test pack {res}x{res} (untrained)",
        "resolution": res,
        "latent_size": res // 4,
        "fps": 25,
        "sample_rate": SAMPLE_RATE,
        "audio": {
            "feature_dim": FEATURE_DIM,
            "feature_rate": 50,
            "hop_samples": HOP,
            "window_samples": WINDOW,
            "normalize_eps": 1e-7,
        },
        "pbnet": {
            "noise_dim": NOISE_DIM,
            "pose_dim": POSE_DIM,
            "eye_dim": EYE_DIM,
            "pose_min": POSE_MIN,
            "pose_max": POSE_MAX,
        },
        "diffusion": {
            "schedule": "cosine",
            "train_timesteps": TRAIN_TIMESTEPS,
            "cosine_s": COSINE_S,
            "max_beta": 0.9999,
            "sampling_steps": 20,
            "eta": 1.0,
            "threshold_quantile": 0.9,
            "latent_channels": 3,
            "condition_dim": COND_DIM,
            "attention_window": ATTENTION_WINDOW,
        },
        "defaults": {
            "init_pose": [0.0, 0.0, 0.0, 4.79e-4, 56.5, 64.9],
            "init_eye": [0.3, 0.3],
        },
        "graphs": dict(GRAPH_FILES),
        "provenance": {
            "kind": "tiny-test",
            "weights": "synthetic",
            "precision": "fp32",
            "tool": f"gst-dawn tiny_pack {GENERATOR_VERSION}",
            "created": CREATED,
            "source": f"tools/tiny_pack.py (seed {SEED}); not derived from DAWN",
            "checkpoints": {},
            "notes": (
                "Untrained test pack: hand-designed stand-in graphs with seeded synthetic weights and "
                "the exact contract signatures (static channels Cs = %d). The denoiser is an oracle "
                "whose DDIM result is an identity sampling grid plus small condition-driven motion, so "
                "decoded frames are the portrait, slightly moved. Not a talking-head model; for tests "
                "only. Regenerate with: .venv/bin/python tools/tiny_pack.py --out tests/models" % cs
            ),
        },
    }


def build_pack(res: int, cs: int) -> dict[str, onnx.ModelProto]:
    return {
        "audio_encoder": audio_encoder(),
        "pbnet_pose": pbnet("pbnet_pose", POSE_DIM, PBNET_POSE_AMP),
        "pbnet_blink": pbnet("pbnet_blink", EYE_DIM, PBNET_BLINK_AMP),
        "portrait_encoder": portrait_encoder(res, cs),
        "denoiser": denoiser(res, cs),
        "decoder": decoder(res),
    }


def write_pack(out_dir: Path, res: int, cs: int) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    for role, model in build_pack(res, cs).items():
        (out_dir / GRAPH_FILES[role]).write_bytes(model.SerializeToString())
    text = json.dumps(manifest(res, cs), indent=2) + "\n"
    (out_dir / "manifest.json").write_text(text, encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("tests/models"), help="parent directory of the packs")
    ap.add_argument("--only", choices=sorted(PACKS), action="append", help="generate only this pack (repeatable)")
    args = ap.parse_args()
    for name in args.only or sorted(PACKS):
        res, cs = PACKS[name]
        write_pack(args.out / name, res, cs)
        size = sum(p.stat().st_size for p in (args.out / name).iterdir())
        print(f"{args.out / name}: resolution {res}, latent {res // 4}, Cs {cs}, {size / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
