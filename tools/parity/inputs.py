"""The inputs both sides get, and the noise in the port's order (torch-free).

One pass over a clip of N = floor(n / 640) frames draws, in the order of docs/streaming.md
("Noise"): for every frame 256 PBNet pose values then 256 blink values; x_T (3·N·s·s, layout
[c][f][y][x]); then, when η > 0, one z of the same size for every DDIM step whose t_next > 0.
Upstream draws the same quantities in another order (all pose z, all blink z, x_T, the z per
step); :meth:`Case.upstream_draws` hands it the port's values for each of its draws.
"""

import json
import os
import wave
from dataclasses import dataclass, field

import numpy as np

from tools.reference import dawn_ref as ref

SAMPLES_PER_FRAME = 640
SAMPLE_RATE = 16000
NOISE_DIM = 256
# The element's offline chunk around a one-pass file: new frames = N, context 20, look-ahead 10,
# audio contexts 50 / 13, PBNet context 100 (src/engine/chunker.rs). With N new frames there is
# one chunk and its window is the whole clip.
ONE_PASS_CONTEXTS = (20, 10, 50, 13, 100)
F32 = np.float32


def read_wav16(path):
    """Mono 16-bit PCM WAV -> (float32 samples S16 / 32768, rate)."""
    with wave.open(path, "rb") as w:
        if (w.getnchannels(), w.getsampwidth()) != (1, 2):
            raise ValueError(f"{path}: {w.getnchannels()} channels of {8 * w.getsampwidth()} "
                             f"bits; a mono 16-bit WAV is needed")
        rate, raw = w.getframerate(), w.readframes(w.getnframes())
    return (np.frombuffer(raw, "<i2").astype(np.float64) / 32768.0).astype(F32), rate


def write_wav16(path, samples):
    """Samples that are k / 32768 (as read_wav16 gives them) back to a 16 kHz WAV, exactly."""
    pcm = np.round(np.asarray(samples, np.float64) * 32768.0).astype("<i2")
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(pcm.tobytes())


def upstream_frame_count(n):
    """``int((n / 16000) * 25)`` of ``process_audio``: one less than floor(n / 640) for some
    exact multiples of 640 (float rounding), e.g. n = 18560."""
    return int((n / SAMPLE_RATE) * 25)


def default_face_box(size):
    """A face box [x0, x1, y0, y1] covering the face of tests/data/skimage_astronaut_<S>.png."""
    return [round(size * f) for f in (0.22, 0.78, 0.18, 0.81)]


def bbox_row(box, size):
    """Upstream's bbox fields [x0, x1, y0, y1, W, H] (init_eye_bbox.npy[2:])."""
    return [float(v) for v in box] + [float(size), float(size)]


def bbox_mask(row, size):
    """Upstream's ``FlowDiffusion.generate_bbox_mask`` for one bbox row, in numpy: x scaled by
    size / W and y by size / H (float32), corners truncated, the far corner + 1, both ends
    inclusive. Returns float32 [1, 1, size, size]."""
    b = np.asarray(row, np.float32)
    x0, x1 = (b[:2] / b[4] * F32(size)).astype(F32)
    y0, y1 = (b[2:4] / b[5] * F32(size)).astype(F32)
    lt_x, lt_y = int(x0), int(y0)
    rb_x, rb_y = int(x1 + F32(1)), int(y1 + F32(1))
    r = np.arange(size)[:, None]
    c = np.arange(size)[None, :]
    m = (r >= lt_y) & (r <= rb_y) & (c >= lt_x) & (c <= rb_x)
    return m.astype(F32)[None, None]


def step_pairs(steps, eta):
    """The DDIM (t, t_next) pairs and whether each draws noise (port: t_next > 0 and η > 0)."""
    pairs = ref.ddim_pairs(1000, steps)
    return [(t, tn, tn > 0 and eta > 0) for t, tn in pairs]


def noise_count(frames, latent, steps, eta, noise_dim=NOISE_DIM):
    per = 3 * frames * latent * latent
    noisy = sum(1 for *_, draws in step_pairs(steps, eta) if draws)
    return 2 * noise_dim * frames + per * (1 + noisy)


@dataclass
class Case:
    """One clip, both sides' inputs."""

    audio: np.ndarray  # float32 [n]
    src_img: np.ndarray  # float32 [1, 3, S, S] in [0, 1]
    face_mask: np.ndarray  # float32 [1, 1, S, S]
    bbox_row: list  # [x0, x1, y0, y1, W, H]
    init_pose: np.ndarray  # [6] raw units
    init_eye: np.ndarray  # [2]
    steps: int
    eta: float
    latent: int
    noise: np.ndarray = field(repr=False)  # the port's stream

    @property
    def frames(self):
        return self.audio.size // SAMPLES_PER_FRAME

    @property
    def resolution(self):
        return self.src_img.shape[-1]

    def split_noise(self):
        """(z_pose [N, 256], z_blink [N, 256], x_T [1, 3, N, s, s], [z per noisy step])."""
        n, s = self.frames, self.latent
        pb = self.noise[:2 * NOISE_DIM * n].reshape(n, 2, NOISE_DIM)
        at = 2 * NOISE_DIM * n
        per = 3 * n * s * s
        latent = lambda i: self.noise[at + i * per:at + (i + 1) * per].reshape(1, 3, n, s, s)
        noisy = [draws for *_, draws in step_pairs(self.steps, self.eta)]
        zs, i = [], 1
        for draws in noisy:
            if draws:
                zs.append(latent(i))
                i += 1
        return pb[:, 0], pb[:, 1], latent(0), zs

    def upstream_draws(self):
        """What upstream's random draws get, in its order. With η = 0 upstream still draws a z
        per step (times σ = 0); it gets zeros, the port draws nothing."""
        n, s = self.frames, self.latent
        zp, zb, x_t, zs = self.split_noise()
        draws = [("PBNet pose z", zp[:, None, :]), ("PBNet blink z", zb[:, None, :]),
                 ("x_T", x_t)]
        it = iter(zs)
        for t, tn, noisy in step_pairs(self.steps, self.eta):
            if tn > 0:
                draws.append((f"z of step t={t}", next(it) if noisy
                              else np.zeros((1, 3, n, s, s), F32)))
        return draws


def make_case(audio, src_img, face_box, init_pose, init_eye, steps, eta, latent, seed):
    S = src_img.shape[-1]
    case = Case(audio=np.asarray(audio, F32), src_img=np.asarray(src_img, F32),
                face_mask=None, bbox_row=bbox_row(face_box, S),
                init_pose=np.asarray(init_pose, np.float64), init_eye=np.asarray(init_eye, np.float64),
                steps=steps, eta=eta, latent=latent, noise=np.zeros(0, F32))
    count = noise_count(case.frames, latent, steps, eta)
    case.noise = np.random.default_rng(seed).standard_normal(count, dtype=F32)
    return case


def write_engine_inputs(case, folder):
    """The folder examples/parity.rs reads: case.json and raw float32 tensors."""
    os.makedirs(folder, exist_ok=True)
    if case.face_mask is None:
        raise ValueError("the face mask must be set (upstream's generate_bbox_mask)")
    for name, arr in (("audio", case.audio), ("noise", case.noise), ("src_img", case.src_img),
                      ("face_mask", case.face_mask)):
        np.ascontiguousarray(arr, dtype="<f4").tofile(os.path.join(folder, f"{name}.f32"))
    meta = {
        "n_samples": int(case.audio.size),
        "planned_samples": int(case.audio.size),
        "steps": case.steps,
        "eta": case.eta,
        "chunk": [max(1, case.frames), *ONE_PASS_CONTEXTS],
        "init_pose": [float(v) for v in case.init_pose],
        "init_eye": [float(v) for v in case.init_eye],
    }
    with open(os.path.join(folder, "case.json"), "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=1)


def read_engine_dump(folder):
    """examples/parity.rs's output: {name: array} (``eps``: a list, one per step) and the index."""
    with open(os.path.join(folder, "index.json"), encoding="utf-8") as f:
        index = json.load(f)
    load = lambda e: np.fromfile(os.path.join(folder, e["file"]), "<f4").reshape(e["shape"])
    out = {"eps": []}
    for e in index["tensors"]:
        if e["name"] == "eps":
            out["eps"].append(load(e))
        elif e["name"] in out:
            raise ValueError(f"{folder}: {e['name']} twice: the run had more than one chunk")
        else:
            out[e["name"]] = load(e)
    out["frames"] = load(index["frames"])
    return out, index
