"""tools/parity against upstream DAWN (the torch suite; needs torch, scipy and DAWN_SRC).

The CI-size run: a random-weight 128 pack (``GST_DAWN_RANDOM_PACK``, or one exported once into
target/parity-rand128), 16 frames, 2 DDIM steps, one clip length per alignment range; the tool
must report every stage within its bound. Plus the pieces the tool restates from upstream: the
face mask and scipy's interpolation.

    DAWN_SRC=DAWN-pytorch python -m unittest tools.torch_tests.test_parity_upstream
"""

import json
import os
import subprocess
import sys
import tempfile
import unittest

import numpy as np

from tools.torch_tests import preconditions

torch = preconditions.torch()

from tools.parity import inputs as I  # noqa: E402
from tools.reference import dawn_ref as ref  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PACK_CACHE = os.path.join(ROOT, "target", "parity-rand128")


def random_pack():
    pack = os.environ.get("GST_DAWN_RANDOM_PACK")
    if pack:
        return pack
    if not os.path.isfile(os.path.join(PACK_CACHE, "manifest.json")):
        r = subprocess.run([sys.executable, "-m", "tools.export", "--dawn-src",
                            preconditions.dawn_src(), "--random-weights", "--resolution", "128",
                            "--out", PACK_CACHE, "--no-verify", "--force"], cwd=ROOT,
                           capture_output=True, text=True, timeout=3600)
        if r.returncode != 0:
            raise AssertionError(f"exporting a random pack into {PACK_CACHE} failed: "
                                 f"{r.stderr.strip().splitlines()[-1:]}")
    return PACK_CACHE


def engine():
    for path in (os.environ.get("GST_DAWN_PARITY_ENGINE"),
                 os.path.join(ROOT, "target", "release", "examples", "parity"),
                 os.path.join(ROOT, "target", "debug", "examples", "parity")):
        if path and os.path.isfile(path):
            return path
    raise AssertionError("build the engine example first: cargo build --release --example parity")


class RestatedPiecesTest(unittest.TestCase):
    def test_clip_alignment_is_scipys_interp1d(self):
        from scipy.interpolate import interp1d

        rng = np.random.default_rng(2)
        for r in (0, 79, 80, 399, 400, 639):
            n = 640 * 30 + r
            th = ref.hubert_rows(n)
            H = rng.standard_normal((1, th, 16)).astype(np.float32)
            want = interp1d(np.arange(th), H[0], kind="linear", axis=0)(
                np.linspace(0, th - 1, n // 640)).astype(np.float32)
            plan = ref.plan_chunk(0, ref.StreamParams(64, 0, 0, 0, 13, 0), n)
            got = ref.lookup_features(H, plan, clip=n)
            np.testing.assert_array_equal(np.stack([got[k] for k in range(n // 640)]), want)

    def test_face_mask_is_generate_bbox_mask(self):
        from tools.export import upstream as U

        U.add_dawn_src(preconditions.dawn_src())
        torch.Tensor.cuda = lambda self, *a, **k: self
        fd, _ = U.build_flow_diffusion(os.path.abspath(preconditions.dawn_src()), 128)
        for row in ([28, 100, 23, 104, 128, 128], [64, 64, 192, 192, 256, 256],
                    [10.5, 50.25, 3.0, 77.9, 100, 120]):
            with torch.no_grad():
                up = fd.generate_bbox_mask(torch.tensor(row, dtype=torch.float32).reshape(1, 6, 1),
                                           size=128).numpy()
            np.testing.assert_array_equal(I.bbox_mask(row, 128), up)


class ParityRunTest(unittest.TestCase):
    def test_port_equals_upstream_on_random_weights(self):
        dawn_src = preconditions.dawn_src()
        pack, exe = random_pack(), engine()
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "parity.json")
            r = subprocess.run([sys.executable, "-m", "tools.parity", "upstream", "--dawn-src",
                                dawn_src, "--pack", pack, "--engine", exe, "--frames", "16",
                                "--extra-samples", "40,300,500", "--steps", "2", "--json", out],
                               cwd=ROOT, capture_output=True, text=True, timeout=3600)
            self.assertEqual(r.returncode, 0, (r.stdout + r.stderr)[-3000:])
            with open(out) as f:
                res = json.load(f)
        self.assertEqual([s["n_mod_640"] for s in res["summary"]], [40, 300, 500])
        for s in res["summary"]:
            self.assertTrue(s["pass"], s)
            self.assertLessEqual(s["final latents"], 1e-4, s)


if __name__ == "__main__":
    unittest.main()
