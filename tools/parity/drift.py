"""How far chunked generation drifts from one pass (torch-free).

The port generates long files and live streams in chunks; upstream does one pass over the
whole clip. With the same random numbers for every frame the difference is what chunking
itself costs. The stream order of docs/streaming.md gives a frame other values in another
chunking, so this measurement draws its noise by key instead: PBNet z by frame, x_T and the
per-step z by (step, frame), context re-noising by (chunk, step, frame). Everything else is the
reference implementation (tools/reference/dawn_ref.py, equal to the engine to ~1e-6 on the
golden cases) with the spec's chunking rules. Reported: the RMS of the final latents' difference
from one pass, relative to the RMS of the one-pass latents.
"""

import numpy as np

from tools.reference import dawn_ref as ref

from . import inputs as I

F32 = np.float32
KINDS = {"x_T": 1, "z": 2, "context": 3, "pbnet": 4}
# src/engine/chunker.rs: the element's chunking.
LIVE = (16, 16, 8)
OFFLINE_CONTEXT, OFFLINE_LOOKAHEAD = 20, 10
AUDIO_LEFT, AUDIO_RIGHT, PBNET_LEFT = 50, 13, 100


def offline_max_call(resolution):
    return 80 if resolution > 128 else 200


def offline_chunk(max_call, context, lookahead, total):
    """The element's offline chunk (chunker::offline_chunk)."""
    largest = max(1, max_call - context - lookahead)
    if total <= max_call:
        return total
    calls = -(-total // largest)
    return -(-total // calls)


class KeyedDawn(ref.StreamingDawn):
    """dawn_ref's generator with noise keyed by (kind, step, frame) instead of a stream."""

    def __init__(self, *a, seed, **k):
        super().__init__(*a, **k)
        self.seed = seed
        self.chunk = 0

    def values(self, kind, chunk, step, frame, n):
        key = [self.seed, KINDS[kind], chunk, step, frame]
        return np.random.default_rng(key).standard_normal(n, dtype=F32)

    def draw_latent(self, kind, step, frames):
        s = self.pack.latent_size
        # Context re-noising has no one-pass counterpart: key it by chunk too.
        chunk = self.chunk if kind == "context" else 0
        per = [self.values(kind, chunk, step, f, 3 * s * s).reshape(3, s, s) for f in frames]
        return np.stack(per, axis=1)[None] if per else np.zeros((1, 3, 0, s, s), F32)

    def draw_pbnet_noise(self, plan):
        nd, st = self.pack.noise_dim, self.state
        for k in range(st.z_next, plan.ke):
            z = self.values("pbnet", 0, 0, k, 2 * nd)
            st.z_pose[k], st.z_blink[k] = z[:nd], z[nd:]
        st.z_next = max(st.z_next, plan.ke)

    def run_chunk(self, audio, plan, portrait):
        self.chunk = plan.index
        return super().run_chunk(audio, plan, portrait)

    def decode(self, lat, portrait):
        """The drift is measured on the latents: no frames needed."""
        return np.zeros((lat.shape[1], 3, 0, 0), F32)


def generate(pack, params, audio, portrait_inputs, steps, eta, planned, seed):
    """(final latents [N, 3, s, s], audio features [N, 1024]) of a clip."""
    gen = KeyedDawn(pack, params, ref.NoiseReader(np.zeros(0, F32)), steps=steps, eta=eta,
                    planned_samples=planned, seed=seed)
    portrait = gen.encode_portrait(*portrait_inputs)
    out = [gen.run_chunk(audio, p, portrait).latents for p in ref.plan_chunks(params, audio.size)]
    feats = np.stack([gen.state.features[k] for k in sorted(gen.state.features)])
    return np.concatenate(out), feats


def rms(x):
    return float(np.sqrt(np.mean(np.square(np.asarray(x, np.float64)))))


def measure(pack, audio, portrait_inputs, steps=3, eta=1.0, seed=1234, log=print):
    """{name: {chunking, chunks, rel_rms}} for the element's offline and live chunkings."""
    n = audio.size
    N = n // I.SAMPLES_PER_FRAME
    S = pack.resolution
    C = offline_chunk(offline_max_call(S), OFFLINE_CONTEXT, OFFLINE_LOOKAHEAD, N)
    variants = {
        "one pass": (ref.StreamParams(max(1, N), OFFLINE_CONTEXT, OFFLINE_LOOKAHEAD, AUDIO_LEFT,
                                      AUDIO_RIGHT, PBNET_LEFT), n),
        "offline": (ref.StreamParams(C, OFFLINE_CONTEXT, OFFLINE_LOOKAHEAD, AUDIO_LEFT,
                                     AUDIO_RIGHT, PBNET_LEFT), n),
        "live": (ref.StreamParams(*LIVE, AUDIO_LEFT, AUDIO_RIGHT, PBNET_LEFT), None),
    }
    got, out = {}, {}
    for name, (params, planned) in variants.items():
        log(f"drift: {name}: C, L, R = {params.C}, {params.L}, {params.R}, "
            f"{len(ref.plan_chunks(params, n))} chunks")
        got[name] = generate(pack, params, audio, portrait_inputs, steps, eta, planned, seed)
    (lat1, feat1) = got["one pass"]
    for name in ("offline", "live"):
        p = variants[name][0]
        lat, feat = got[name]
        out[name] = {"C": p.C, "L": p.L, "R": p.R, "chunks": len(ref.plan_chunks(p, n)),
                     "rel_rms": rms(lat - lat1) / rms(lat1),
                     "features_rel_rms": rms(feat - feat1) / rms(feat1),
                     "planned": variants[name][1] is not None}
    return out


def alignment_gap(pack, audio, frames, remainders=(0, 79, 80, 399, 400, 639)):
    """How far two rows per frame (the live rule) is from DAWN's clip alignment, on one pass
    over 640·frames + r samples: max and RMS of the feature difference relative to the clip
    features' max and RMS. {r: (max_rel, rms_rel)}."""
    eps = float(pack.manifest["audio"]["normalize_eps"])
    out = {}
    for r in remainders:
        n = 640 * frames + r
        plan = ref.plan_chunk(0, ref.StreamParams(frames, 0, 0, 0, 13, 0), n)
        H = pack.run("audio_encoder", input_values=ref.normalise_window(audio[:n], eps)[None])[
            "last_hidden_state"]
        clip = ref.lookup_features(H, plan, clip=n)
        live = ref.lookup_features(H, plan)
        a = np.stack([clip[k] for k in range(frames)]).astype(np.float64)
        b = np.stack([live[k] for k in range(frames)]).astype(np.float64)
        out[r] = (float(np.abs(a - b).max() / np.abs(a).max()), rms(a - b) / rms(a))
    return out
