"""Independent Python reference of gst-dawn's streaming scheduler and DDIM sampler.

This module implements docs/streaming.md literally, with numpy and onnxruntime only, so that the
Rust engine (src/engine/) can be checked against a second implementation written from the same
specification (the golden test, tests/golden/). It deliberately does not share code or structure
with the Rust engine.

Precision conventions (the spec fixes most of them; where it does not, the choice is noted at the
place it is made):
- the schedule is computed in float64 and rounded to float32, like the upstream buffers;
- everything that touches tensors (sampler arithmetic, audio normalisation applied to samples,
  PBNet scaling) is float32, because that is what the engine and the upstream sampler do;
- parameters that come from JSON (pose ranges, init pose, quantile q) are float64 until they meet
  a tensor.

Spec ambiguities resolved here (also listed in tests/golden/README.md):
- A1 (audio normalisation): "computed in f64, applied in f32" is read as: mean and
  sqrt(var + eps) are computed in f64, each rounded to f32, then w' = (w - mean32) / std32 is
  evaluated in f32 (a division, not a multiplication by the reciprocal).
- A2 (quantile): the position q * (n - 1) and the interpolation between the two order statistics
  are computed in f64 from the f32 values, the result is rounded to f32.
- A3 (noise layouts): every latent-shaped draw (x_T, n, z, n') is [c][f][y][x] over its own
  frames. (First an ambiguity; the spec now states it for item 3 too.)
- A4 (eta = 0 with context): item 4 draws nothing when eta = 0, so the replacement reuses the
  initial context noise n for every step, keeping the context on the deterministic DDIM
  trajectory sqrt(a') x0c + sqrt(1 - a') n. (First an ambiguity; the spec now says so.) The
  golden cases do not exercise this combination (the eta = 0 case has L = 0).
- A5 (PBNet scaling): init_state = f32((init_pose - pose_min) / (pose_max - pose_min)) in f64;
  delta * f32(pose_max - pose_min) is an f32 product.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field

import numpy as np

FRAME_SAMPLES = 640  # 16 kHz / 25 fps: frame k covers samples [640 k, 640 k + 640)
HUBERT_PER_FRAME = 2  # 50 Hz HuBERT features per 25 fps video frame (the live alignment)

F32 = np.float32


# --------------------------------------------------------------------------------------------
# Schedule and sampler coefficients
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Schedule:
    """The float32 buffers the sampler reads (plus the f64 alphas they came from)."""

    alphas_cumprod64: np.ndarray  # f64 [T]
    alphas_cumprod: np.ndarray  # f32 [T]
    alphas_cumprod_prev: np.ndarray  # f32 [T], [0] = 1
    sqrt_recip: np.ndarray  # f32 [T], sqrt(1 / abar)
    sqrt_recipm1: np.ndarray  # f32 [T], sqrt(1 / abar - 1)

    @property
    def train_timesteps(self) -> int:
        return len(self.alphas_cumprod)


def cosine_schedule(train_timesteps: int, cosine_s: float, max_beta: float) -> Schedule:
    """Cosine beta schedule (Nichol & Dhariwal), computed in f64 and stored as f32."""
    T = train_timesteps
    x = np.arange(T + 1, dtype=np.float64)
    f = np.cos(((x / T) + cosine_s) / (1.0 + cosine_s) * math.pi / 2.0) ** 2
    betas = np.clip(1.0 - f[1:] / f[:-1], 0.0, max_beta)
    ac64 = np.cumprod(1.0 - betas)
    ac32 = ac64.astype(F32)
    # The shift is applied to the f32 buffer, as upstream pads the cumprod before the cast; the
    # values are the same either way because 1 is exact in f32.
    prev32 = np.concatenate([np.ones(1, dtype=F32), ac32[:-1]])
    # The reciprocals come from the f64 alphas (rounded once), not from the f32 buffer.
    sqrt_recip = np.sqrt(1.0 / ac64).astype(F32)
    sqrt_recipm1 = np.sqrt(1.0 / ac64 - 1.0).astype(F32)
    return Schedule(ac64, ac32, prev32, sqrt_recip, sqrt_recipm1)


def ddim_timesteps(train_timesteps: int, steps: int) -> list[int]:
    """Visited timesteps tau_m, ..., tau_0 = 0 (m + 1 values, m pairs).

    The spec's rule is torch's: ``torch.linspace(0, T, m + 2)[:-1].int()``, evaluated as ATen's
    CPU kernel does in float32. With P = m + 2 points and step = f32(T) / f32(P - 1), point i is
    f32(step * i) for i < P // 2 and f32(T - f32(step * (P - 1 - i))) otherwise; ``.int()``
    truncates toward zero.
    """
    T, m = train_timesteps, steps
    if not 1 <= m < T:
        raise ValueError(f"sampling steps must be in [1, {T}), got {m}")
    points = m + 2
    step = F32(T) / F32(points - 1)
    i = np.arange(m + 1)
    lower = (step * i.astype(F32)).astype(F32)
    upper = (F32(T) - (step * (points - 1 - i).astype(F32)).astype(F32)).astype(F32)
    taus = np.where(i < points // 2, lower, upper).astype(np.int64)  # trunc: all values >= 0
    return [int(t) for t in taus[::-1]]


def ddim_pairs(train_timesteps: int, steps: int) -> list[tuple[int, int]]:
    ts = ddim_timesteps(train_timesteps, steps)
    return list(zip(ts[:-1], ts[1:]))


@dataclass(frozen=True)
class StepCoefficients:
    t: int
    t_next: int
    a: np.float32  # abar_prev[t] (the upstream quirk: "current" alpha from abar_prev)
    a_next: np.float32  # abar_prev[t_next]
    sigma: np.float32
    c: np.float32


def step_coefficients(sched: Schedule, t: int, t_next: int, eta: float) -> StepCoefficients:
    """sigma and c of one DDIM step, in f32 arithmetic like the upstream float32 buffers."""
    one = F32(1.0)
    a = sched.alphas_cumprod_prev[t]
    a_next = sched.alphas_cumprod_prev[t_next]
    sigma = F32(eta) * np.sqrt((one - a / a_next) * (one - a_next) / (one - a))
    inner = (one - a_next) - sigma * sigma
    # Mathematically inner >= 0 for eta <= 1 (a <= a'); a negative value would be a real error
    # (e.g. eta > 1), so let it surface as NaN rather than hide it.
    c = np.sqrt(inner) if inner >= 0 else F32(np.nan)
    return StepCoefficients(t, t_next, a, a_next, F32(sigma), F32(c))


def quantile_linear(values: np.ndarray, q: float) -> np.float32:
    """q-quantile with linear interpolation between order statistics at q * (n - 1).

    Same definition as torch.quantile / numpy's 'linear' method. Position and interpolation are
    done in f64 (ambiguity A2), the result is rounded to f32.
    """
    v = np.sort(np.asarray(values, dtype=F32).ravel()).astype(np.float64)
    n = v.size
    if n == 0:
        raise ValueError("quantile of an empty tensor")
    pos = q * (n - 1)
    lo = int(math.floor(pos))
    hi = min(lo + 1, n - 1)
    frac = pos - lo
    return F32(v[lo] + frac * (v[hi] - v[lo]))


def dynamic_threshold(x0: np.ndarray, q: float) -> tuple[np.ndarray, np.float32]:
    """Imagen dynamic thresholding: k = max(1, quantile(|x0|, q)); x0 = clamp(x0, -k, k) / k."""
    k = max(F32(1.0), quantile_linear(np.abs(x0), q))
    k = F32(k)
    return (np.clip(x0, -k, k) / k).astype(F32), k


# --------------------------------------------------------------------------------------------
# Chunk plan
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StreamParams:
    C: int  # new frames per chunk (>= 1)
    L: int  # diffusion context frames (>= 0)
    R: int  # look-ahead frames (>= 0)
    Al: int  # audio left context (frames)
    Ar: int  # audio right context (frames)
    Lp: int  # PBNet left context (frames)

    def __post_init__(self):
        if self.C < 1 or min(self.L, self.R, self.Al, self.Ar, self.Lp) < 0:
            raise ValueError(f"invalid stream parameters {self}")


@dataclass(frozen=True)
class ChunkPlan:
    index: int
    k0: int  # first new frame
    k1: int  # end of new frames (exclusive)
    ke: int  # end of look-ahead (exclusive)
    a0: int  # audio window start (samples)
    a1: int  # audio window end (samples, exclusive); also the "ready" threshold
    c0: int  # first diffusion context frame
    p0: int  # first PBNet window frame

    @property
    def F(self) -> int:
        """Frames in the diffusion call: context + new + look-ahead."""
        return self.ke - self.c0

    @property
    def Lc(self) -> int:
        """Context frames actually present (fewer than L at the start)."""
        return self.k0 - self.c0

    @property
    def new_frames(self) -> int:
        return self.k1 - self.k0

    def as_dict(self) -> dict:
        return dict(index=self.index, k0=self.k0, k1=self.k1, ke=self.ke, a0=self.a0,
                    a1=self.a1, c0=self.c0, p0=self.p0)


def frame_count(n_total: int | None) -> float | int:
    """N = floor(n_total / 640) (the DAWN rule); infinite before EOS."""
    return math.inf if n_total is None else n_total // FRAME_SAMPLES


def plan_chunk(i: int, p: StreamParams, n_total: int | None = None) -> ChunkPlan | None:
    """Chunk i, or None when it does not exist (k0 >= N). n_total None means "before EOS".

    Before EOS the min() terms never bite; a chunk that becomes ready before EOS therefore has the
    same plan as when it is computed after EOS (its a1 <= n_total), which is what makes the
    output independent of how the audio is delivered.
    """
    N = frame_count(n_total)
    k0 = i * p.C
    if k0 >= N:
        return None
    nt = math.inf if n_total is None else n_total
    return ChunkPlan(
        index=i,
        k0=k0,
        k1=int(min(k0 + p.C, N)),
        ke=int(min(k0 + p.C + p.R, N)),
        a0=FRAME_SAMPLES * max(0, k0 - p.Al),
        a1=int(min(FRAME_SAMPLES * (k0 + p.C + p.R + p.Ar), nt)),
        c0=max(0, k0 - p.L),
        p0=max(0, k0 - p.Lp),
    )


def plan_chunks(p: StreamParams, n_total: int) -> list[ChunkPlan]:
    """All chunks of a clip whose length is known (EOS)."""
    plans = []
    i = 0
    while (c := plan_chunk(i, p, n_total)) is not None:
        plans.append(c)
        i += 1
    return plans


def chunk_ready(plan: ChunkPlan, samples_received: int) -> bool:
    return samples_received >= plan.a1


# --------------------------------------------------------------------------------------------
# Noise
# --------------------------------------------------------------------------------------------


class NoiseExhausted(RuntimeError):
    pass


class NoiseReader:
    """Sequential reader of standard-normal f32 values (little-endian file or array).

    The golden test gives both implementations the same file, so the only thing that must match
    is the order in which values are taken; `consumed` lets the test check the count too.
    """

    def __init__(self, source):
        if isinstance(source, (str, os.PathLike)):
            self._data = np.fromfile(source, dtype="<f4").astype(F32)
        else:
            self._data = np.ascontiguousarray(source, dtype=F32).ravel()
        self.consumed = 0

    def __len__(self) -> int:
        return self._data.size

    def take(self, n: int) -> np.ndarray:
        if n < 0:
            raise ValueError("negative noise request")
        end = self.consumed + n
        if end > self._data.size:
            raise NoiseExhausted(
                f"noise stream exhausted: need {n} values at offset {self.consumed}, "
                f"only {self._data.size} in the stream")
        out = self._data[self.consumed:end].copy()
        self.consumed = end
        return out


def chunk_noise_count(plan: ChunkPlan, z_next: int, steps: int, eta: float, latent_size: int,
                      noise_dim: int, train_timesteps: int) -> int:
    """Values one chunk takes from the stream (items 1-4 of the spec), without running it."""
    per_frame = 3 * latent_size * latent_size
    n = 2 * noise_dim * max(0, plan.ke - z_next)  # item 1
    n += per_frame * plan.F  # item 2
    n += per_frame * plan.Lc  # item 3
    if eta > 0:
        noisy_steps = sum(1 for _, tn in ddim_pairs(train_timesteps, steps) if tn > 0)
        n += noisy_steps * per_frame * (plan.F + plan.Lc)  # item 4
    return n


def clip_noise_count(plans: list[ChunkPlan], steps: int, eta: float, latent_size: int,
                     noise_dim: int, train_timesteps: int) -> list[int]:
    counts, z_next = [], 0
    for plan in plans:
        counts.append(chunk_noise_count(plan, z_next, steps, eta, latent_size, noise_dim,
                                        train_timesteps))
        z_next = max(z_next, plan.ke)
    return counts


# --------------------------------------------------------------------------------------------
# Audio
# --------------------------------------------------------------------------------------------


def normalise_window(w: np.ndarray, eps: float) -> np.ndarray:
    """Zero mean, unit variance over the window (population variance; ambiguity A1)."""
    w32 = np.asarray(w, dtype=F32)
    w64 = w32.astype(np.float64)
    mean = w64.mean()
    var = ((w64 - mean) ** 2).mean()
    mean32 = F32(mean)
    std32 = F32(math.sqrt(var + eps))
    return ((w32 - mean32) / std32).astype(F32)


def window_end(k0: int, p: StreamParams) -> int:
    """End of chunk k0's audio window before EOS cuts it (samples, exclusive)."""
    return FRAME_SAMPLES * (k0 + p.C + p.R + p.Ar)


def hubert_rows(n_samples: int) -> int:
    """Th = floor((n - 80) / 320): HuBERT's 400-sample receptive field, hop 320."""
    return max(0, n_samples - 80) // 320


def chunk_alignment(plan: ChunkPlan, p: StreamParams, planned: int | None) -> int | None:
    """The clip length (samples) whose alignment chunk ``plan`` uses, or None for 2 rows/frame.

    docs/streaming.md, "Audio features": a window cut by EOS -> the real length (plan.a1) when a
    length was announced or the chunk is the first; a complete window -> the announced length
    while the chunk's frames lie inside it; otherwise (live) None.
    """
    cut = plan.a1 < window_end(plan.k0, p)
    if cut:
        return plan.a1 if (planned is not None or plan.k0 == 0) else None
    if planned is not None and plan.ke <= planned // FRAME_SAMPLES:
        return planned
    return None


def clip_positions(n_samples: int) -> np.ndarray:
    """Upstream's positions: numpy.linspace(0, Th - 1, N) over the clip's N frames (f64)."""
    return np.linspace(0, hubert_rows(n_samples) - 1, n_samples // FRAME_SAMPLES)


def interp_rows(H: np.ndarray, first_row: int, pos: float) -> np.ndarray:
    """H (the window's rows, starting at stream row first_row) at stream position pos.

    Evaluated as scipy.interpolate.interp1d(kind='linear') does on float32 rows: interval
    index from searchsorted (left side, clipped to [1, Th - 1]), slope as a float32 difference
    (promoted), value slope * (pos - lo) + y_lo in float64, then float32. Rows beyond the window
    are clamped to its first/last row.
    """
    rows = H.shape[0]
    lo = max(math.ceil(pos), 1) - 1  # searchsorted(arange(Th), pos) = ceil(pos), clipped to >= 1
    clamp = lambda r: min(max(r - first_row, 0), rows - 1)
    y_lo, y_hi = H[clamp(lo)], H[clamp(lo + 1)]
    slope = (y_hi - y_lo).astype(np.float64)
    return (slope * (pos - lo) + y_lo.astype(np.float64)).astype(F32)


def lookup_features(H: np.ndarray, plan: ChunkPlan, clip: int | None = None
                    ) -> dict[int, np.ndarray]:
    """A[k] for the chunk's fresh frames [k0, ke) from H [1, Th, 1024].

    clip None: frame k reads row 2k (exactly, no interpolation). Otherwise the frames follow the
    alignment of a clip of ``clip`` samples.
    """
    Th = H.shape[1]
    first = HUBERT_PER_FRAME * (plan.a0 // FRAME_SAMPLES)
    assert plan.a0 % FRAME_SAMPLES == 0
    out = {}
    if clip is None:
        for k in range(plan.k0, plan.ke):
            j = HUBERT_PER_FRAME * k - first
            if j >= Th:
                raise ValueError(f"frame {k} needs HuBERT row {j} but the window gave only {Th} "
                                 f"(window [{plan.a0}, {plan.a1}))")
            out[k] = H[0, j].astype(F32)
        return out
    if Th == 0:
        raise ValueError(f"window [{plan.a0}, {plan.a1}) gave no HuBERT rows")
    pos = clip_positions(clip)
    for k in range(plan.k0, plan.ke):
        out[k] = interp_rows(H[0], first, float(pos[k]))
    return out


# --------------------------------------------------------------------------------------------
# Model pack
# --------------------------------------------------------------------------------------------


class Pack:
    """A model pack: manifest + six ONNX Runtime sessions (CPU, single thread for repeatability)."""

    ROLES = ("audio_encoder", "pbnet_pose", "pbnet_blink", "portrait_encoder", "denoiser",
             "decoder")

    def __init__(self, path: str, threads: int = 1, memory_pattern: bool = True):
        import onnxruntime as ort  # imported here so the pure functions need numpy only

        self.path = path
        with open(os.path.join(path, "manifest.json")) as fh:
            self.manifest = json.load(fh)
        opts = ort.SessionOptions()
        # One thread and sequential execution: reductions then run in a fixed order, so
        # re-running make_golden reproduces the files bit-exactly. (tools/parity's drift
        # measurement runs real packs with more threads and, like the engine, without ONNX
        # Runtime's per-shape memory pattern.)
        opts.intra_op_num_threads = threads
        opts.enable_mem_pattern = memory_pattern
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.log_severity_level = 3
        graphs = self.manifest["graphs"]
        self.sessions = {
            role: ort.InferenceSession(os.path.join(path, graphs[role]), sess_options=opts,
                                       providers=["CPUExecutionProvider"])
            for role in self.ROLES
        }

    # Manifest shortcuts -------------------------------------------------------------------
    @property
    def resolution(self) -> int:
        return int(self.manifest["resolution"])

    @property
    def latent_size(self) -> int:
        return int(self.manifest["latent_size"])

    @property
    def noise_dim(self) -> int:
        return int(self.manifest["pbnet"]["noise_dim"])

    @property
    def diffusion(self) -> dict:
        return self.manifest["diffusion"]

    def run(self, role: str, **feeds) -> dict[str, np.ndarray]:
        sess = self.sessions[role]
        names = [o.name for o in sess.get_outputs()]
        outs = sess.run(names, {k: np.ascontiguousarray(v, dtype=F32) for k, v in feeds.items()})
        return dict(zip(names, outs))


# --------------------------------------------------------------------------------------------
# The streaming generator
# --------------------------------------------------------------------------------------------


@dataclass
class Portrait:
    src_img: np.ndarray  # [1, 3, S, S]
    skip0: np.ndarray
    skip1: np.ndarray
    feat: np.ndarray
    static: np.ndarray
    init_pose: np.ndarray  # f64 [6], raw units
    init_eye: np.ndarray  # f64 [2]


@dataclass
class StreamState:
    """Everything that survives from one chunk to the next (per-frame stores)."""

    features: dict[int, np.ndarray] = field(default_factory=dict)  # A[k], new frames only
    conds: dict[int, np.ndarray] = field(default_factory=dict)  # cond[k] [1032]
    z_pose: dict[int, np.ndarray] = field(default_factory=dict)  # [256]
    z_blink: dict[int, np.ndarray] = field(default_factory=dict)
    z_next: int = 0  # first frame that has no PBNet noise yet
    latents: dict[int, np.ndarray] = field(default_factory=dict)  # final x0 [3, s, s]


@dataclass
class ChunkResult:
    plan: ChunkPlan
    frames: np.ndarray  # [new, 3, S, S] decoder output (before 8-bit quantisation)
    latents: np.ndarray  # [new, 3, s, s]
    noise_used: int


class StreamingDawn:
    """Runs the chunks of docs/streaming.md in order on audio that is fully known (EOS)."""

    def __init__(self, pack: Pack, params: StreamParams, noise: NoiseReader, *,
                 steps: int | None = None, eta: float | None = None,
                 planned_samples: int | None = None, decoder_batch: int | None = None):
        self.pack = pack
        self.decoder_batch = decoder_batch  # frames per decoder call (None: all at once)
        self.params = params
        self.planned = planned_samples  # the length announced before the first chunk, if any
        self.noise = noise
        d = pack.diffusion
        self.steps = int(d["sampling_steps"] if steps is None else steps)
        self.eta = float(d["eta"] if eta is None else eta)
        self.q = float(d["threshold_quantile"])
        self.sched = cosine_schedule(int(d["train_timesteps"]), float(d["cosine_s"]),
                                     float(d["max_beta"]))
        self.coefs = [step_coefficients(self.sched, t, tn, self.eta)
                      for t, tn in ddim_pairs(self.sched.train_timesteps, self.steps)]
        pb = pack.manifest["pbnet"]
        self.pose_min = np.asarray(pb["pose_min"], dtype=np.float64)
        self.pose_max = np.asarray(pb["pose_max"], dtype=np.float64)
        self.state = StreamState()

    # Portrait --------------------------------------------------------------------------------
    def encode_portrait(self, src_img, face_mask, init_pose, init_eye) -> Portrait:
        out = self.pack.run("portrait_encoder", src_img=src_img, face_mask=face_mask)
        return Portrait(np.asarray(src_img, dtype=F32), out["skip0"], out["skip1"], out["feat"],
                        out["static"], np.asarray(init_pose, dtype=np.float64),
                        np.asarray(init_eye, dtype=np.float64))

    # Stages ---------------------------------------------------------------------------------
    def chunk_features(self, audio: np.ndarray, plan: ChunkPlan) -> dict[int, np.ndarray]:
        eps = float(self.pack.manifest["audio"]["normalize_eps"])
        w = normalise_window(audio[plan.a0:plan.a1], eps)
        H = self.pack.run("audio_encoder", input_values=w[None, :])["last_hidden_state"]
        return lookup_features(H, plan, chunk_alignment(plan, self.params, self.planned))

    def draw_pbnet_noise(self, plan: ChunkPlan) -> None:
        """Noise item 1: z for frames entering a PBNet window for the first time."""
        nd = self.pack.noise_dim
        st = self.state
        for k in range(st.z_next, plan.ke):
            st.z_pose[k] = self.noise.take(nd)
            st.z_blink[k] = self.noise.take(nd)
        st.z_next = max(st.z_next, plan.ke)

    def pbnet(self, plan: ChunkPlan, fresh: dict[int, np.ndarray], portrait: Portrait):
        """Delta pose (raw units) and delta eye for frames [k0, ke)."""
        st = self.state
        ks = range(plan.p0, plan.ke)
        audio = np.stack([st.features[k] if k < plan.k0 else fresh[k] for k in ks])[None]
        zp = np.stack([st.z_pose[k] for k in ks])[:, None, :]
        zb = np.stack([st.z_blink[k] for k in ks])[:, None, :]
        span = self.pose_max - self.pose_min
        pose_state = ((portrait.init_pose - self.pose_min) / span).astype(F32)[None, None, :]
        eye_state = portrait.init_eye.astype(F32)[None, None, :]
        dpose = self.pack.run("pbnet_pose", init_state=pose_state, z=zp, audio=audio)["delta"]
        deye = self.pack.run("pbnet_blink", init_state=eye_state, z=zb, audio=audio)["delta"]
        off = plan.k0 - plan.p0  # first fresh frame inside the window
        dpose = dpose[0, off:] * span.astype(F32)  # ambiguity A5: f32 product
        deye = deye[0, off:]
        return dpose.astype(F32), deye.astype(F32)

    def conditions(self, plan: ChunkPlan, fresh, dpose, deye) -> np.ndarray:
        """cond [1, F, 1032]: stored for context frames, fresh for the rest."""
        st = self.state
        rows = [st.conds[k] for k in range(plan.c0, plan.k0)]
        for i, k in enumerate(range(plan.k0, plan.ke)):
            rows.append(np.concatenate([fresh[k], dpose[i], deye[i]]).astype(F32))
        return np.stack(rows)[None]

    def draw_latent(self, kind: str, step: int, frames: range) -> np.ndarray:
        """A latent-shaped draw [1, 3, F, s, s] for absolute frames ``frames``: the next values
        of the stream. ``kind`` ("x_T", "z", "context") and ``step`` (0 for the initial draws,
        j for step j) do not matter here; tools/parity's drift measurement keys them instead."""
        s, n = self.pack.latent_size, len(frames)
        return self.noise.take(3 * n * s * s).reshape(1, 3, n, s, s)

    def sample(self, plan: ChunkPlan, cond: np.ndarray, portrait: Portrait) -> np.ndarray:
        """DDIM with context replacement; returns the final latent [3, F, s, s]."""
        Lc = plan.Lc
        frames, context = range(plan.c0, plan.ke), range(plan.c0, plan.k0)
        x = self.draw_latent("x_T", 0, frames)  # item 2, layout [c][f][y][x]
        if Lc > 0:
            x0c = np.stack([self.state.latents[k] for k in context], axis=1)[None]
            n_ctx = self.draw_latent("context", 0, context)  # item 3
            a = self.coefs[0].a  # abar_prev[t_first]
            x[:, :, :Lc] = np.sqrt(a) * x0c + np.sqrt(F32(1) - a) * n_ctx
        for j, co in enumerate(self.coefs, 1):
            eps = self.pack.run("denoiser", x_t=x, static=portrait.static,
                                timestep=np.array([co.t], dtype=F32), cond=cond)["eps"]
            x0 = self.sched.sqrt_recip[co.t] * x - self.sched.sqrt_recipm1[co.t] * eps
            x0, _ = dynamic_threshold(x0, self.q)
            noisy = co.t_next > 0 and self.eta > 0
            z = self.draw_latent("z", j, frames) if noisy else None  # item 4, frame part
            x = np.sqrt(co.a_next) * x0 + co.c * eps
            if z is not None:
                x = x + co.sigma * z
            if Lc > 0:
                if co.t_next > 0:
                    # item 4, context part; at eta = 0 nothing is drawn and n' = n (A4)
                    n_step = self.draw_latent("context", j, context) if noisy else n_ctx
                    x[:, :, :Lc] = (np.sqrt(co.a_next) * x0c
                                    + np.sqrt(F32(1) - co.a_next) * n_step)
                else:
                    x[:, :, :Lc] = x0c
            x = x.astype(F32)
        return x[0]

    def decode(self, lat: np.ndarray, portrait: Portrait) -> np.ndarray:
        """lat [3, n, s, s] -> frames [n, 3, S, S] (float, before quantisation). Frames are
        decoded independently; ``decoder_batch`` only bounds the memory of one call."""
        flow = np.stack([lat[0], lat[1]], axis=-1)  # [n, s, s, 2], x first
        occlusion = ((lat[2] + F32(1)) / F32(2))[:, None]  # [n, 1, s, s]
        step = self.decoder_batch or max(1, flow.shape[0])
        parts = [self.pack.run("decoder", src_img=portrait.src_img, skip0=portrait.skip0,
                               skip1=portrait.skip1, feat=portrait.feat, flow=flow[i:i + step],
                               occlusion=occlusion[i:i + step])["frames"]
                 for i in range(0, flow.shape[0], step)]
        return np.concatenate(parts)

    # One chunk ------------------------------------------------------------------------------
    def run_chunk(self, audio: np.ndarray, plan: ChunkPlan, portrait: Portrait) -> ChunkResult:
        before = self.noise.consumed
        st = self.state
        fresh = self.chunk_features(audio, plan)
        self.draw_pbnet_noise(plan)
        dpose, deye = self.pbnet(plan, fresh, portrait)
        cond = self.conditions(plan, fresh, dpose, deye)
        lat = self.sample(plan, cond, portrait)

        new = slice(plan.Lc, plan.Lc + plan.new_frames)  # look-ahead is discarded
        for i, k in enumerate(range(plan.k0, plan.k1)):
            st.features[k] = fresh[k]
            st.conds[k] = cond[0, plan.Lc + i]
            st.latents[k] = lat[:, plan.Lc + i].copy()
        # Keep only what a later chunk can still read: context latents (last L frames) and
        # conditions; the PBNet window reads features back to k0 - Lp.
        for k in [k for k in st.latents if k < plan.k1 - self.params.L]:
            del st.latents[k]

        frames = self.decode(lat[:, new], portrait)
        return ChunkResult(plan, frames.astype(F32), np.moveaxis(lat[:, new], 0, 1).copy(),
                           self.noise.consumed - before)


def generate_clip(pack: Pack, params: StreamParams, audio: np.ndarray, noise: NoiseReader,
                  src_img, face_mask, init_pose, init_eye, *, steps=None, eta=None,
                  planned_samples=None):
    """Runs every chunk of a clip known to its end (all chunks at EOS). ``planned_samples`` is
    the length announced before the first chunk (None: a live stream).

    Returns (frames [N, 3, S, S], latents [N, 3, s, s], chunk results).
    """
    gen = StreamingDawn(pack, params, noise, steps=steps, eta=eta,
                        planned_samples=planned_samples)
    portrait = gen.encode_portrait(src_img, face_mask, init_pose, init_eye)
    audio = np.asarray(audio, dtype=F32)
    results = [gen.run_chunk(audio, plan, portrait) for plan in plan_chunks(params, audio.size)]
    S, s = pack.resolution, pack.latent_size
    frames = np.concatenate([r.frames for r in results] + [np.zeros((0, 3, S, S), F32)])
    latents = np.concatenate([r.latents for r in results] + [np.zeros((0, 3, s, s), F32)])
    return frames, latents, results
