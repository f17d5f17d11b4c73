"""Tests of the independent Python reference (tools/reference/dawn_ref.py) and its goldens.

Run from the repository root:  .venv/bin/python -m unittest discover -s tools/tests -t .
"""

from __future__ import annotations

import filecmp
import json
import math
import os
import tempfile
import unittest

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))

from tools.reference import dawn_ref as ref

F32 = np.float32

# The schedule of docs/streaming.md ("Schedule"): t, t_next, abar_prev[t], abar_prev[t_next], abar[t], sigma, c
# (T = 1000, cosine s = 0.008, max_beta = 0.9999, m = 20, eta = 1).
TABLE_5_4 = [
    (952, 904, 0.005585, 0.022217, 0.005356, 0.85795, 0.49164),
    (904, 857, 0.022217, 0.048849, 0.021760, 0.72825, 0.64870),
    (857, 809, 0.048849, 0.086018, 0.048180, 0.64438, 0.70623),
    (809, 761, 0.086018, 0.132436, 0.085146, 0.57680, 0.73135),
    (761, 714, 0.132436, 0.185853, 0.131382, 0.51934, 0.73785),
    (714, 666, 0.185853, 0.247344, 0.184642, 0.47940, 0.72307),
    (666, 619, 0.247344, 0.313034, 0.246001, 0.43765, 0.70387),
    (619, 571, 0.313034, 0.384246, 0.311590, 0.40758, 0.67055),
    (571, 523, 0.384246, 0.458046, 0.382731, 0.37657, 0.63257),
    (523, 476, 0.458046, 0.531229, 0.456493, 0.34519, 0.59128),
    (476, 428, 0.531229, 0.605269, 0.529673, 0.32094, 0.54012),
    (428, 380, 0.605269, 0.676959, 0.603745, 0.29439, 0.48618),
    (380, 333, 0.676959, 0.743338, 0.675501, 0.26636, 0.43094),
    (333, 285, 0.743338, 0.805741, 0.741975, 0.24211, 0.36830),
    (285, 238, 0.805741, 0.860236, 0.804506, 0.21349, 0.30690),
    (238, 190, 0.860236, 0.907922, 0.859153, 0.18602, 0.23974),
    (190, 142, 0.907922, 0.946496, 0.907018, 0.15389, 0.17269),
    (142, 95, 0.946496, 0.974609, 0.945792, 0.11700, 0.10818),
    (95, 47, 0.974609, 0.992826, 0.974115, 0.07200, 0.04460),
    (47, 0, 0.992826, 1.000000, 0.992558, 0.0, 0.0),
]


class ScheduleTest(unittest.TestCase):
    def setUp(self):
        self.sched = ref.cosine_schedule(1000, 0.008, 0.9999)

    def test_buffers_are_f32(self):
        for buf in (self.sched.alphas_cumprod, self.sched.alphas_cumprod_prev,
                    self.sched.sqrt_recip, self.sched.sqrt_recipm1):
            self.assertEqual(buf.dtype, np.float32)
            self.assertEqual(buf.shape, (1000,))
        self.assertEqual(self.sched.alphas_cumprod_prev[0], 1.0)
        np.testing.assert_array_equal(self.sched.alphas_cumprod_prev[1:],
                                      self.sched.alphas_cumprod[:-1])

    def test_timesteps(self):
        self.assertEqual(ref.ddim_timesteps(1000, 20),
                         [952, 904, 857, 809, 761, 714, 666, 619, 571, 523, 476, 428, 380, 333,
                          285, 238, 190, 142, 95, 47, 0])
        self.assertEqual(ref.ddim_timesteps(1000, 5), [833, 666, 500, 333, 166, 0])
        self.assertEqual(len(ref.ddim_pairs(1000, 1)), 1)
        with self.assertRaises(ValueError):
            ref.ddim_timesteps(1000, 1000)

    def test_timesteps_equal_torch_for_every_step_count(self):
        # tests/data/torch_ddim_timesteps.u16: torch.linspace(0, 1000, m + 2)[:-1].int() for
        # m = 1..999 (tools/reference/torch_timesteps.py wrote it)
        table = np.fromfile(os.path.join(REPO, "tests", "data", "torch_ddim_timesteps.u16"),
                            dtype="<u2").astype(int)
        self.assertEqual(table.size, sum(m + 1 for m in range(1, 1000)))
        at = 0
        for m in range(1, 1000):
            want = table[at:at + m + 1][::-1].tolist()
            at += m + 1
            self.assertEqual(ref.ddim_timesteps(1000, m), want, f"{m} steps")
        self.assertIn(499, ref.ddim_timesteps(1000, 25))

    def test_table_5_4(self):
        pairs = ref.ddim_pairs(1000, 20)
        self.assertEqual(pairs, [(row[0], row[1]) for row in TABLE_5_4])
        for t, tn, a, a_next, abar, sigma, c in TABLE_5_4:
            co = ref.step_coefficients(self.sched, t, tn, 1.0)
            with self.subTest(t=t):
                self.assertAlmostEqual(float(co.a), a, delta=1e-5)
                self.assertAlmostEqual(float(co.a_next), a_next, delta=1e-5)
                self.assertAlmostEqual(float(self.sched.alphas_cumprod[t]), abar, delta=1e-5)
                self.assertAlmostEqual(float(co.sigma), sigma, delta=1e-5)
                self.assertAlmostEqual(float(co.c), c, delta=1e-5)

    def test_last_step_and_eta0(self):
        last = ref.step_coefficients(self.sched, 47, 0, 1.0)
        self.assertEqual((float(last.a_next), float(last.sigma), float(last.c)), (1.0, 0.0, 0.0))
        co = ref.step_coefficients(self.sched, 952, 904, 0.0)
        self.assertEqual(float(co.sigma), 0.0)
        self.assertAlmostEqual(float(co.c), math.sqrt(1 - 0.022217), delta=1e-5)

    def test_reciprocals_from_f64(self):
        ac64 = self.sched.alphas_cumprod64
        self.assertEqual(self.sched.sqrt_recip[500], F32(math.sqrt(1 / ac64[500])))
        self.assertEqual(self.sched.sqrt_recipm1[500], F32(math.sqrt(1 / ac64[500] - 1)))


class ThresholdTest(unittest.TestCase):
    def test_hand_quantile(self):
        # |x| sorted = [1, 2, 3, 4, 5]; position 0.9 * 4 = 3.6 -> 4 + 0.6 * (5 - 4) = 4.6
        self.assertAlmostEqual(float(ref.quantile_linear(np.abs([-3, 1, 2, -5, 4]), 0.9)), 4.6,
                               places=6)
        # n = 2: position 0.5 -> midpoint; q = 1 -> the maximum
        self.assertAlmostEqual(float(ref.quantile_linear([1.0, 2.0], 0.5)), 1.5, places=7)
        self.assertEqual(float(ref.quantile_linear([0.5, 9.0, 2.0], 1.0)), 9.0)

    def test_matches_numpy_linear(self):
        rng = np.random.default_rng(3)
        x = (rng.standard_normal(3 * 7 * 16 * 16) * 2).astype(F32)
        for q in (0.1, 0.5, 0.9, 0.999):
            self.assertAlmostEqual(float(ref.quantile_linear(np.abs(x), q)),
                                   float(np.quantile(np.abs(x).astype(np.float64), q)),
                                   delta=1e-6)

    def test_dynamic_threshold(self):
        x0 = np.array([-3, 1, 2, -5, 4], dtype=F32)
        out, k = ref.dynamic_threshold(x0, 0.9)
        self.assertAlmostEqual(float(k), 4.6, places=6)
        np.testing.assert_allclose(out, np.array([-3, 1, 2, -4.6, 4]) / 4.6, rtol=1e-6)
        # quantile below 1: k = 1, a plain clamp to [-1, 1]
        out, k = ref.dynamic_threshold(np.array([0.1, -0.2, 0.3, 7.0], dtype=F32), 0.5)
        self.assertEqual(float(k), 1.0)
        np.testing.assert_array_equal(out, np.array([0.1, -0.2, 0.3, 1.0], dtype=F32))
        self.assertEqual(out.dtype, np.float32)


class ChunkPlanTest(unittest.TestCase):
    P = ref.StreamParams(C=8, L=4, R=3, Al=6, Ar=2, Lp=10)

    def test_frame_count(self):
        self.assertEqual(ref.frame_count(639), 0)
        self.assertEqual(ref.frame_count(640), 1)
        self.assertEqual(ref.frame_count(47 * 640 + 639), 47)
        self.assertEqual(ref.frame_count(None), math.inf)
        self.assertEqual(ref.plan_chunks(self.P, 639), [])

    def test_eos_with_partial_last_chunk(self):
        n_total = 47 * 640 + 317
        plans = ref.plan_chunks(self.P, n_total)
        got = [(c.k0, c.k1, c.ke, c.a0, c.a1, c.c0, c.p0) for c in plans]
        self.assertEqual(got, [
            (0, 8, 11, 0, 8320, 0, 0),
            (8, 16, 19, 1280, 13440, 4, 0),
            (16, 24, 27, 6400, 18560, 12, 6),
            (24, 32, 35, 11520, 23680, 20, 14),
            (32, 40, 43, 16640, 28800, 28, 22),
            (40, 47, 47, 21760, n_total, 36, 30),  # 7 new frames, no look-ahead, audio to EOS
        ])
        self.assertEqual(sum(c.new_frames for c in plans), 47)
        self.assertEqual([(c.F, c.Lc) for c in plans],
                         [(11, 0), (15, 4), (15, 4), (15, 4), (15, 4), (11, 4)])

    def test_eos_cuts_lookahead_only(self):
        # N = 20: the last chunk keeps all C = 8 new frames but loses its look-ahead
        plans = ref.plan_chunks(self.P, 20 * 640 + 5)
        self.assertEqual([(c.k0, c.k1, c.ke) for c in plans], [(0, 8, 11), (8, 16, 19),
                                                                (16, 20, 20)])

    def test_ready_chunks_do_not_depend_on_eos(self):
        # A chunk that is ready before EOS is planned exactly as after EOS.
        for n_total in (30397, 40960, 13440, 13441):
            for plan in ref.plan_chunks(self.P, n_total):
                early = ref.plan_chunk(plan.index, self.P, None)
                if ref.chunk_ready(early, n_total):
                    self.assertEqual(early, plan)

    def test_no_context_case(self):
        p = ref.StreamParams(C=5, L=0, R=2, Al=3, Ar=0, Lp=3)
        plans = ref.plan_chunks(p, 12 * 640 + 133)
        self.assertEqual([(c.k0, c.k1, c.ke, c.a0, c.a1, c.c0, c.p0) for c in plans], [
            (0, 5, 7, 0, 4480, 0, 0),
            (5, 10, 12, 1280, 7680, 5, 2),
            (10, 12, 12, 4480, 7813, 10, 7),
        ])
        self.assertTrue(all(c.Lc == 0 for c in plans))

    def test_noise_counts(self):
        plans = ref.plan_chunks(self.P, 47 * 640 + 317)
        counts = ref.clip_noise_count(plans, 20, 1.0, 16, 256, 1000)
        # chunk 0: 11 frames of PBNet z (2 x 256 each) + 20 draws (x_T + 19 steps) of 11 frames
        self.assertEqual(counts[0], 11 * 512 + 20 * 3 * 11 * 256)
        # chunk 1: 8 new PBNet frames, 20 draws of (15 frames + 4 context frames)
        self.assertEqual(counts[1], 8 * 512 + 20 * 3 * (15 + 4) * 256)
        # eta = 0: only PBNet z and x_T; the last chunk adds no PBNet frames (ke unchanged)
        p = ref.StreamParams(C=5, L=0, R=2, Al=3, Ar=0, Lp=3)
        counts = ref.clip_noise_count(ref.plan_chunks(p, 7813), 5, 0.0, 16, 256, 1000)
        self.assertEqual(counts, [7 * 512 + 768 * 7, 5 * 512 + 768 * 7, 768 * 2])

    def test_invalid_params(self):
        with self.assertRaises(ValueError):
            ref.StreamParams(C=0, L=0, R=0, Al=0, Ar=0, Lp=0)


class AudioAndNoiseTest(unittest.TestCase):
    def test_normalise(self):
        w = (np.sin(np.arange(4000) * 0.01) * 0.3 + 0.1).astype(F32)
        out = ref.normalise_window(w, 1e-7)
        self.assertEqual(out.dtype, np.float32)
        self.assertAlmostEqual(float(out.astype(np.float64).mean()), 0.0, delta=1e-6)
        self.assertAlmostEqual(float(out.astype(np.float64).var()), 1.0, delta=1e-5)
        # silence stays finite thanks to eps
        self.assertTrue(np.all(ref.normalise_window(np.zeros(800, F32), 1e-7) == 0))

    def test_two_rows_per_frame(self):
        plan = ref.plan_chunk(5, ref.StreamParams(8, 4, 3, 6, 2, 10), 47 * 640 + 317)
        Th = (plan.a1 - plan.a0 - 80) // 320
        H = np.arange(Th, dtype=F32)[None, :, None] * np.ones((1, 1, 4), F32)
        feats = ref.lookup_features(H, plan)
        self.assertEqual(sorted(feats), list(range(40, 47)))
        self.assertEqual(float(feats[46][0]), 2 * (46 - 34))  # row 2 (k - a0 / 640)
        self.assertLess(2 * (46 - 34), Th)

    def test_clip_alignment_equals_upstream_interp1d(self):
        # upstream: interp1d(arange(Th), H, axis=0)(linspace(0, Th - 1, N)), here evaluated by
        # hand for a whole-clip window (a0 = 0), one length per n mod 640 range.
        rng = np.random.default_rng(5)
        for r, th in ((41, 2 * 20 - 1), (250, 2 * 20), (600, 2 * 20 + 1)):
            n = 20 * 640 + r
            self.assertEqual(ref.hubert_rows(n), th)
            plan = ref.plan_chunk(0, ref.StreamParams(32, 0, 0, 0, 13, 0), n)
            H = rng.standard_normal((1, th, 8)).astype(F32)
            feats = ref.lookup_features(H, plan, clip=n)
            pos = np.linspace(0, th - 1, 20)
            for k in range(20):
                lo = min(int(np.floor(pos[k])), th - 2)
                w = pos[k] - lo
                want = (H[0, lo].astype(np.float64) * (1 - w)
                        + H[0, lo + 1].astype(np.float64) * w).astype(F32)
                np.testing.assert_allclose(feats[k], want, rtol=1e-6, atol=1e-7)
            if r < 80:  # one row per 640 samples exactly: the live rule gives the same rows
                live = ref.lookup_features(H, plan)
                for k in range(20):
                    np.testing.assert_allclose(feats[k], live[k], rtol=0, atol=1e-6)

    def test_chunk_alignment_rule(self):
        p = ref.StreamParams(C=5, L=3, R=2, Al=4, Ar=2, Lp=6)
        n, planned = 16 * 640 + 450, 26 * 640 + 120
        plans = ref.plan_chunks(p, n)
        got = [ref.chunk_alignment(c, p, planned) for c in plans]
        self.assertEqual(got, [planned, planned, n, n])  # cut by EOS from chunk 2 on
        self.assertEqual([ref.chunk_alignment(c, p, None) for c in plans],
                         [None, None, None, None])
        one = ref.StreamParams(32, 0, 0, 0, 13, 0)
        self.assertEqual([ref.chunk_alignment(c, one, None) for c in ref.plan_chunks(one, n)], [n])
        # frames past the announced length: two rows per frame
        self.assertIsNone(ref.chunk_alignment(plans[1], p, 8 * 640))

    def test_noise_reader(self):
        r = ref.NoiseReader(np.arange(10, dtype=F32))
        np.testing.assert_array_equal(r.take(4), [0, 1, 2, 3])
        np.testing.assert_array_equal(r.take(6), [4, 5, 6, 7, 8, 9])
        self.assertEqual(r.consumed, 10)
        with self.assertRaises(ref.NoiseExhausted):
            r.take(1)

    def test_noise_reader_file(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "n.f32")
            np.array([1.5, -2.0, 3.25], dtype="<f4").tofile(path)
            r = ref.NoiseReader(path)
            self.assertEqual(len(r), 3)
            np.testing.assert_array_equal(r.take(3), [1.5, -2.0, 3.25])


class _FakePack:
    """Stand-in graphs with obvious outputs, to test the plumbing without ONNX Runtime."""

    def __init__(self, S=16):
        self.resolution, self.latent_size, self.noise_dim = S, S // 4, 4
        self.manifest = {
            "audio": {"normalize_eps": 1e-7},
            "pbnet": {"noise_dim": 4, "pose_min": [-90, -90, -90, 0, 0, 0],
                      "pose_max": [90, 90, 90, 1, 720, 1080]},
        }
        self.diffusion = {"train_timesteps": 1000, "cosine_s": 0.008, "max_beta": 0.9999,
                          "sampling_steps": 4, "eta": 1.0, "threshold_quantile": 0.9}
        self.calls = []

    def run(self, role, **f):
        self.calls.append((role, {k: np.array(v) for k, v in f.items()}))
        if role == "audio_encoder":  # row j holds j: the lookup is visible in cond
            Th = (f["input_values"].shape[1] - 80) // 320
            return {"last_hidden_state": np.repeat(np.arange(Th, dtype=F32)[None, :, None],
                                                   1024, axis=2)}
        if role in ("pbnet_pose", "pbnet_blink"):
            M, D = f["z"].shape[0], f["init_state"].shape[2]
            return {"delta": np.broadcast_to(f["z"][:, 0, :1].T[:, :, None], (1, M, D))}
        if role == "portrait_encoder":
            s = self.latent_size
            return {"skip0": 0, "skip1": 0, "feat": 0, "static": np.zeros((1, 2, s, s), F32)}
        if role == "denoiser":
            return {"eps": 0.1 * f["x_t"]}
        if role == "decoder":
            S = self.resolution
            return {"frames": np.zeros((f["flow"].shape[0], 3, S, S), F32)}
        raise KeyError(role)


class StreamingPlumbingTest(unittest.TestCase):
    def run_fake(self, params, n_total, eta):
        pack = _FakePack()
        plans = ref.plan_chunks(params, n_total)
        need = sum(ref.clip_noise_count(plans, 4, eta, pack.latent_size, 4, 1000))
        reader = ref.NoiseReader(np.random.default_rng(0).standard_normal(need + 7, dtype=F32))
        audio = np.random.default_rng(1).standard_normal(n_total).astype(F32)
        frames, lat, results = ref.generate_clip(
            pack, params, audio, reader, np.zeros((1, 3, 16, 16), F32),
            np.zeros((1, 1, 16, 16), F32), [0] * 6, [0.3, 0.3], steps=4, eta=eta)
        return pack, reader, need, frames, lat, results

    def test_context_is_pinned_and_noise_counted(self):
        p = ref.StreamParams(C=3, L=2, R=1, Al=2, Ar=1, Lp=4)
        pack, reader, need, frames, lat, results = self.run_fake(p, 10 * 640 + 1, 1.0)
        self.assertEqual(reader.consumed, need)
        self.assertEqual(frames.shape, (10, 3, 16, 16))
        self.assertEqual(lat.shape, (10, 3, 4, 4))
        denoiser = [c for r, c in pack.calls if r == "denoiser"]
        self.assertEqual(len(denoiser), 4 * len(results))
        # Chunk 1 (k0 = 3, c0 = 1): the conditions of its context frames are the stored ones,
        # and the audio feature of fresh frame k is HuBERT row 2 (k - a0 / 640).
        cond1 = denoiser[4]["cond"][0]
        self.assertEqual(cond1.shape, (4 + 2, 1032))  # frames [1, 7)
        plan1 = results[1].plan
        self.assertEqual((plan1.c0, plan1.k0, plan1.ke), (1, 3, 7))
        cond0 = denoiser[0]["cond"][0]
        np.testing.assert_array_equal(cond1[:2], cond0[1:3])
        for i, k in enumerate(range(3, 7)):
            self.assertEqual(cond1[2 + i, 0], 2 * (k - plan1.a0 // 640))
        self.assertEqual([float(c["timestep"][0]) for c in denoiser[:4]],
                         [800.0, 600.0, 400.0, 200.0])
        # Chunk 1's first denoiser call sees its context forward-diffused from the latents that
        # chunk 0 emitted for frames 1 and 2, with the noise taken right after PBNet z (frames
        # [4, 7): 3 x 2 x 4 values) and x_T (3 x 6 x 4 x 4 values): items 1, 2, 3 in order.
        noise = np.random.default_rng(0).standard_normal(need + 7, dtype=F32)
        off = results[0].noise_used + 3 * 2 * 4 + 3 * 6 * 16
        n_ctx = noise[off:off + 3 * 2 * 16].reshape(3, 2, 4, 4)
        x0c = np.moveaxis(lat[1:3], 0, 1)
        a = ref.cosine_schedule(1000, 0.008, 0.9999).alphas_cumprod_prev[800]
        np.testing.assert_array_equal(denoiser[4]["x_t"][0, :, :2],
                                      np.sqrt(a) * x0c + np.sqrt(F32(1) - a) * n_ctx)
        # x_T of chunk 1 (new and look-ahead frames) is the block right before n_ctx
        x_T = noise[off - 3 * 6 * 16:off].reshape(3, 6, 4, 4)
        np.testing.assert_array_equal(denoiser[4]["x_t"][0, :, 2:], x_T[:, 2:])
        # The emitted latents are a clamped x0 (|x| <= 1).
        self.assertTrue(np.all(np.abs(lat) <= 1.0))

    def test_eta0_with_context_reuses_initial_context_noise(self):
        p = ref.StreamParams(C=3, L=2, R=1, Al=2, Ar=1, Lp=4)
        pack, reader, need, _, lat, results = self.run_fake(p, 9 * 640, 0.0)
        self.assertEqual(reader.consumed, need)
        # chunk 1 (frames [1, 7), context [1, 3)) draws PBNet z, x_T and n, nothing per step
        self.assertEqual(results[1].noise_used, 3 * 2 * 4 + 3 * 6 * 16 + 3 * 2 * 16)
        noise = np.random.default_rng(0).standard_normal(need + 7, dtype=F32)
        off = results[0].noise_used + 3 * 2 * 4 + 3 * 6 * 16
        n_ctx = noise[off:off + 3 * 2 * 16].reshape(3, 2, 4, 4)
        x0c = np.moveaxis(lat[1:3], 0, 1)
        sched = ref.cosine_schedule(1000, 0.008, 0.9999)
        calls = [c for r, c in pack.calls if r == "denoiser"][4:8]
        for call in calls:  # every step sees the context diffused with the same n
            a = sched.alphas_cumprod_prev[int(call["timestep"][0])]
            np.testing.assert_array_equal(call["x_t"][0, :, :2],
                                          np.sqrt(a) * x0c + np.sqrt(F32(1) - a) * n_ctx)

    def test_eta0_draws_only_initial_noise(self):
        p = ref.StreamParams(C=3, L=0, R=1, Al=2, Ar=0, Lp=2)
        _, reader, need, frames, _, results = self.run_fake(p, 7 * 640, 0.0)
        self.assertEqual(reader.consumed, need)
        self.assertEqual(need, 7 * 2 * 4 + sum(3 * r.plan.F * 16 for r in results))


def _pack_available(rel: str) -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return os.path.isfile(os.path.join(REPO, rel, "manifest.json"))


class GoldenReproductionTest(unittest.TestCase):
    """make_golden.py run again must reproduce the committed files byte for byte."""

    def test_goldens_reproduce(self):
        from tools.reference import make_golden

        committed_cases = sorted(d for d in os.listdir(os.path.join(REPO, "tests", "golden"))
                                 if os.path.isdir(os.path.join(REPO, "tests", "golden", d)))
        self.assertEqual(committed_cases, sorted(make_golden.CASES))
        for name, case in make_golden.CASES.items():
            committed = os.path.join(REPO, "tests", "golden", name)
            with self.subTest(case=name):
                self.assertTrue(_pack_available(case.pack),
                                f"onnxruntime (tools/setup.sh) or {case.pack} missing")
                self.assertTrue(os.path.isfile(os.path.join(committed, "case.json")),
                                f"{committed} missing: run tools/reference/make_golden.py")
                with open(os.path.join(committed, "case.json")) as fh:
                    recorded = json.load(fh).get("pack_sha256")
                self.assertEqual(recorded, make_golden.pack_fingerprint(
                    os.path.join(REPO, case.pack)),
                    f"{case.pack} changed since {name} was written: rerun "
                    "python -m tools.reference.make_golden")
                with tempfile.TemporaryDirectory() as tmp:
                    make_golden.make_case(case, tmp)
                    fresh = os.path.join(tmp, name)
                    with open(os.path.join(committed, "case.json")) as fh:
                        meta = json.load(fh)
                    names = ["case.json"] + [f["file"] for f in meta["files"].values()]
                    match, mismatch, errors = filecmp.cmpfiles(committed, fresh, names,
                                                               shallow=False)
                    self.assertEqual((mismatch, errors), ([], []))


if __name__ == "__main__":
    unittest.main()
