"""tools/parity without torch: the noise order both sides get, the comparison and its verdict,
the command line's errors, and the port's side end to end (examples/parity.rs on the tiny pack
against the independent reference, stage by stage). The upstream side runs in the torch suite
(tools/torch_tests/test_parity_upstream.py).
"""

import json
import os
import subprocess
import sys
import tempfile
import unittest

import numpy as np

from tools.parity import cli
from tools.parity import compare as K
from tools.parity import inputs as I
from tools.parity import port as PORT
from tools.reference import dawn_ref as ref
from tools.reference import make_golden

ROOT = PORT.ROOT
TINY = os.path.join(ROOT, "tests", "models", "tiny64")
# test.sh builds the examples (cargo test --all-targets) before the Python tests run.
ENGINE = os.environ.get("GST_DAWN_PARITY_ENGINE",
                        os.path.join(ROOT, "target", "debug", "examples", "parity"))
F32 = np.float32


def tiny_case(n, steps=3, eta=1.0, seed=5):
    audio, _ = I.read_wav16(cli.DEFAULT_AUDIO)
    src = make_golden.portrait_tensor(os.path.join(ROOT, "tests", "data",
                                                   "skimage_astronaut_128.png"), 64)
    case = I.make_case(audio[:n], src, I.default_face_box(64), cli.DEFAULT_INIT_POSE,
                       cli.DEFAULT_INIT_EYE, steps, eta, 16, seed)
    case.face_mask = I.bbox_mask(case.bbox_row, 64)
    return case


class NoiseOrderTest(unittest.TestCase):
    def test_port_order_and_upstream_draws(self):
        case = tiny_case(640 * 5 + 100, steps=3, eta=1.0)
        n, s = 5, 16
        self.assertEqual(case.noise.size, I.noise_count(n, s, 3, 1.0))
        # the same count as the reference's plan-only count for a one pass
        plan = ref.plan_chunk(0, ref.StreamParams(n, *I.ONE_PASS_CONTEXTS), case.audio.size)
        self.assertEqual(case.noise.size,
                         ref.chunk_noise_count(plan, 0, 3, 1.0, s, 256, 1000))
        draws = case.upstream_draws()
        self.assertEqual([w for w, _ in draws][:3], ["PBNet pose z", "PBNet blink z", "x_T"])
        # frame by frame: 256 pose values then 256 blink values
        np.testing.assert_array_equal(draws[0][1][2, 0], case.noise[2 * 512:2 * 512 + 256])
        np.testing.assert_array_equal(draws[1][1][2, 0], case.noise[2 * 512 + 256:3 * 512])
        per = 3 * n * s * s
        np.testing.assert_array_equal(draws[2][1].ravel(), case.noise[512 * n:512 * n + per])
        # 3 steps (750, 500, 250 -> 0): z for the two steps whose t_next > 0
        self.assertEqual(len(draws), 5)
        np.testing.assert_array_equal(draws[4][1].ravel(), case.noise[512 * n + 2 * per:])

    def test_eta0_gives_upstream_zeros(self):
        case = tiny_case(640 * 4, steps=3, eta=0.0)
        self.assertEqual(case.noise.size, 512 * 4 + 3 * 4 * 256)
        draws = case.upstream_draws()
        self.assertEqual(len(draws), 5)
        self.assertTrue(all(not d.any() for _, d in draws[3:]))

    def test_upstream_frame_count_and_mask(self):
        self.assertEqual(I.upstream_frame_count(18560), 28)  # float rounding: 29 frames are 28
        self.assertEqual(I.upstream_frame_count(41359), 64)
        m = I.bbox_mask([10, 20, 5, 8, 128, 128], 64)[0, 0]  # x 5..10, y 2..4 (+1, inclusive)
        self.assertEqual(m.shape, (64, 64))
        self.assertEqual(np.argwhere(m).min(0).tolist(), [2, 5])
        self.assertEqual(np.argwhere(m).max(0).tolist(), [5, 11])

    def test_wav_round_trip_is_exact(self):
        audio, _ = I.read_wav16(cli.DEFAULT_AUDIO)
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "x.wav")
            I.write_wav16(p, audio[:5000])
            back, rate = I.read_wav16(p)
        self.assertEqual(rate, 16000)
        np.testing.assert_array_equal(back, audio[:5000])


class CompareTest(unittest.TestCase):
    def fake(self, n=4, s=2, S=4, steps=2, noise=0.0):
        rng = np.random.default_rng(1)
        up = {"audio_features": rng.standard_normal((n, 1024)).astype(F32),
              "pbnet_pose_delta": rng.standard_normal((n, 6)).astype(F32),
              "pbnet_blink_delta": rng.standard_normal((n, 2)).astype(F32),
              "cond": rng.standard_normal((1, n, 1032)).astype(F32),
              "eps": [rng.standard_normal((1, 3, n, s, s)).astype(F32) for _ in range(steps)],
              "latents": rng.uniform(-1, 1, (1, 3, n, s, s)).astype(F32),
              "frames": rng.uniform(0, 1, (n, 3, S, S)).astype(F32)}
        port = {"audio_features": up["audio_features"] + noise,
                "pbnet_pose_delta": up["pbnet_pose_delta"], "pbnet_blink_delta": up["pbnet_blink_delta"],
                "cond": up["cond"][0], "eps": [e[0] for e in up["eps"]],
                "latents": up["latents"][0], "frames": up["frames"]}
        return port, up

    def test_equal_sides_pass(self):
        rows = K.compare(*self.fake())
        self.assertEqual([r["stage"] for r in rows],
                         ["audio features", "PBNet Δpose", "PBNet Δeye", "conditioning", "ε", "ε",
                          "final latents", "frames", "frames (8-bit)"])
        self.assertTrue(all(r["pass"] and r["max_abs"] == 0 for r in rows))
        s = K.summary_row(640 * 4 + 80, rows)
        self.assertTrue(s["pass"])
        self.assertIn("| 2640 | 80 | 4 |", K.summary_table([s]))

    def test_a_difference_above_the_bound_fails(self):
        port, up = self.fake()
        port["latents"] = port["latents"] + 1e-3
        rows = K.compare(port, up)
        bad = [r["stage"] for r in rows if not r["pass"]]
        self.assertEqual(bad, ["final latents"])
        self.assertIn("FAIL", K.table(rows))
        self.assertFalse(K.summary_row(2560, rows)["pass"])
        port, up = self.fake()
        port["eps"] = port["eps"][:1]
        with self.assertRaises(ValueError):
            K.compare(port, up)

    def test_metric(self):
        self.assertEqual(K.diff([1.0, 2.0], [1.0, 4.0]), (2.0, 0.5))
        self.assertEqual(K.diff([0.0], [0.0]), (0.0, 0.0))
        self.assertEqual(K.diff([np.nan], [1.0]), (float("inf"), float("inf")))
        np.testing.assert_array_equal(K.to_uint8([[-0.5, 0.5, 1.5]]), [[0, 127, 255]])


class CommandLineTest(unittest.TestCase):
    def run_cli(self, *args):
        return subprocess.run([sys.executable, "-m", "tools.parity", *args], cwd=ROOT,
                              capture_output=True, text=True)

    def test_bad_inputs_exit_2_with_the_fix(self):
        r = self.run_cli("upstream", "--dawn-src", ROOT, "--pack", "/nonexistent")
        self.assertEqual(r.returncode, 2)
        self.assertIn("/nonexistent/manifest.json", r.stderr)
        r = self.run_cli("upstream", "--dawn-src", ROOT, "--pack", TINY, "--engine", "/nonexistent/parity")
        self.assertEqual(r.returncode, 2)
        self.assertIn("cargo build --release --example parity", r.stderr)
        r = self.run_cli("upstream", "--dawn-src", ROOT, "--pack", TINY, "--engine", ENGINE)
        self.assertEqual(r.returncode, 2)
        self.assertIn("not a DAWN-pytorch checkout", r.stderr)
        src = tempfile.mkdtemp()
        os.makedirs(os.path.join(src, "DM_3"))
        r = self.run_cli("upstream", "--dawn-src", src, "--pack", TINY, "--engine", ENGINE)
        self.assertEqual(r.returncode, 2)
        self.assertIn("not a pack made by tools/export", r.stderr)
        os.rmdir(os.path.join(src, "DM_3"))
        os.rmdir(src)
        with self.assertRaises(cli.InputError) as cm:
            cli.lengths(29, "0")  # 18560 samples: upstream makes 28 frames of them
        self.assertIn("upstream's int(n / 16000 * 25) gives 28 frames", str(cm.exception))
        with self.assertRaises(cli.InputError):
            cli.lengths(64, "640")
        self.assertEqual(cli.lengths(64, "0,79"), [40960, 41039])


class PortSideTest(unittest.TestCase):
    """examples/parity.rs on the tiny pack: its stages equal the reference's (docs/streaming.md)."""

    def test_engine_stages_equal_the_reference(self):
        if not os.path.isfile(ENGINE):
            self.fail(f"{ENGINE} missing: build it with `cargo build --example parity` "
                      f"(tools/test.sh builds it) or set GST_DAWN_PARITY_ENGINE")
        for n in (640 * 12 + 41, 640 * 12 + 517):
            case = tiny_case(n)
            with tempfile.TemporaryDirectory() as d:
                got, index = PORT.run(ENGINE, TINY, case, d, timeout=300)
            self.assertEqual(index["chunks"][0]["alignment_samples"], n)
            self.assertEqual(index["noise_consumed"], case.noise.size)
            want = self.reference(case)
            for key, tol in (("audio_features", 1e-5), ("pbnet_pose_delta", 1e-4),
                             ("pbnet_blink_delta", 1e-5), ("cond", 1e-4), ("latents", 1e-5),
                             ("frames", 1e-4)):
                with self.subTest(n=n, stage=key):
                    self.assertEqual(got[key].shape, want[key].shape)
                    self.assertLessEqual(float(np.abs(got[key] - want[key]).max()), tol)
            self.assertEqual(len(got["eps"]), 3)

    def reference(self, case):
        pack = ref.Pack(TINY)
        n = case.audio.size
        params = ref.StreamParams(case.frames, *I.ONE_PASS_CONTEXTS)
        gen = ref.StreamingDawn(pack, params, ref.NoiseReader(case.noise), steps=case.steps,
                                eta=case.eta, planned_samples=n)
        portrait = gen.encode_portrait(case.src_img, case.face_mask, case.init_pose, case.init_eye)
        (plan,) = ref.plan_chunks(params, n)
        fresh = gen.chunk_features(case.audio, plan)
        gen.draw_pbnet_noise(plan)
        dpose, deye = gen.pbnet(plan, fresh, portrait)
        cond = gen.conditions(plan, fresh, dpose, deye)
        lat = gen.sample(plan, cond, portrait)
        return {"audio_features": np.stack([fresh[k] for k in range(plan.k0, plan.ke)]),
                "pbnet_pose_delta": dpose, "pbnet_blink_delta": deye, "cond": cond[0],
                "latents": lat, "frames": gen.decode(lat, portrait)}


if __name__ == "__main__":
    unittest.main()
