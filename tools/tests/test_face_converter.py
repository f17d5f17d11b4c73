"""The 3DDFA_V2 face-graph converter (tools/face).

The argument and file checks run everywhere (no torch). The conversion itself needs torch and
the checkpoint: it runs when this file is run by a Python with torch (tools/test.sh does that
when DAWN_TORCH_PYTHON is set) and DAWN_SRC names a DAWN-pytorch checkout; with torch present
but no checkpoint it fails, without torch it is reported as skipped with the reason.
"""

import importlib.util
import os
import re
import subprocess
import sys
import tempfile
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from tools.face import cli  # noqa: E402

HAVE_TORCH = importlib.util.find_spec("torch") is not None
CHECKPOINT_IN_DAWN_SRC = os.path.join("extract_init_states", "weights", "mb05_120x120.pth")


def converter(*argv, python=sys.executable, prelude="pass"):
    """Runs `python -m tools.face ARGV` (after `prelude`); returns (exit status, output)."""
    code = f"import sys; {prelude}; from tools.face.__main__ import main; sys.exit(main(sys.argv[1:]))"
    r = subprocess.run([python, "-c", code, *argv], cwd=ROOT, capture_output=True, text=True,
                       timeout=600)
    return r.returncode, r.stdout + r.stderr


class ArgumentTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.ckpt = os.path.join(self.tmp.name, "mb05_120x120.pth")
        with open(self.ckpt, "wb") as f:
            f.write(b"not really a checkpoint")
        self.out = os.path.join(self.tmp.name, "out")

    def tearDown(self):
        self.tmp.cleanup()

    def check(self, argv):
        args = cli.build_parser().parse_args(argv)
        return cli.check_args(args)

    def test_defaults_are_the_shipped_files_and_the_test_photos(self):
        faces = self.check(["--checkpoint", self.ckpt, "--out", self.out])
        self.assertTrue(os.path.isfile(cli.SHIPPED_GRAPH), cli.SHIPPED_GRAPH)
        self.assertTrue(os.path.isfile(cli.SHIPPED_MEAN_STD), cli.SHIPPED_MEAN_STD)
        self.assertEqual([os.path.basename(p) for p, _ in faces],
                         ["mpl_grace_hopper.jpg", "skimage_astronaut.png"])
        self.assertEqual(faces[0][1], (183.0, 120.0, 170.0, 213.0))

    def test_missing_checkpoint_names_it_and_where_to_find_it(self):
        with self.assertRaisesRegex(cli.UsageError, r"nope\.pth not found.*extract_init_states"):
            self.check(["--checkpoint", os.path.join(self.tmp.name, "nope.pth"), "--out", self.out])

    def test_bad_face_arguments(self):
        photo = os.path.join(ROOT, "tests", "data", "mpl_grace_hopper.jpg")
        for bad in (photo, f"{photo}:1,2,3", f"{photo}:1,2,0,4", f"{photo}:a,b,c,d"):
            with self.assertRaisesRegex(cli.UsageError, "IMAGE:X,Y,W,H", msg=bad):
                self.check(["--checkpoint", self.ckpt, "--out", self.out, "--face", bad])
        with self.assertRaisesRegex(cli.UsageError, "missing.jpg not found"):
            self.check(["--checkpoint", self.ckpt, "--out", self.out, "--face", "missing.jpg:1,2,3,4"])
        faces = self.check(["--checkpoint", self.ckpt, "--out", self.out, "--face", f"{photo}:1,2,3.5,4"])
        self.assertEqual(faces, [(photo, (1.0, 2.0, 3.5, 4.0))])

    def test_out_is_checked(self):
        with open(self.out, "w") as f:
            f.write("x")
        with self.assertRaisesRegex(cli.UsageError, "not a directory"):
            self.check(["--checkpoint", self.ckpt, "--out", self.out])
        os.remove(self.out)
        os.makedirs(self.out)
        open(os.path.join(self.out, cli.GRAPH_NAME), "w").close()
        with self.assertRaisesRegex(cli.UsageError, "--force"):
            self.check(["--checkpoint", self.ckpt, "--out", self.out])
        self.check(["--checkpoint", self.ckpt, "--out", self.out, "--force"])
        with self.assertRaisesRegex(cli.UsageError, "overwrite the reference"):
            self.check(["--checkpoint", self.ckpt, "--out", os.path.dirname(cli.SHIPPED_GRAPH),
                        "--force"])

    def test_numbers_are_checked(self):
        for flags in (["--random", "0"], ["--tolerance", "0"], ["--tolerance", "nan"]):
            with self.assertRaises(cli.UsageError, msg=flags):
                self.check(["--checkpoint", self.ckpt, "--out", self.out, *flags])

    def test_usage_errors_exit_2(self):
        status, out = converter("--checkpoint", os.path.join(self.tmp.name, "nope.pth"),
                                "--out", self.out)
        self.assertEqual(status, 2, out)
        self.assertIn("nope.pth not found", out)

    def test_without_torch_it_says_what_it_needs(self):
        status, out = converter("--checkpoint", self.ckpt, "--out", self.out,
                                prelude="sys.modules['torch'] = None")
        self.assertEqual(status, 2, out)
        self.assertIn("needs torch", out)
        self.assertFalse(os.path.exists(os.path.join(self.out, cli.GRAPH_NAME)))


@unittest.skipUnless(HAVE_TORCH, "needs torch: run tools/test.sh with DAWN_TORCH_PYTHON set to a "
                                 "Python with torch (docs/exporter.md) and DAWN_SRC to a DAWN-pytorch "
                                 "checkout")
class ConversionTest(unittest.TestCase):
    """Rebuilds the shipped graph from the checkpoint and compares it."""

    @classmethod
    def setUpClass(cls):
        src = os.environ.get("DAWN_SRC", "")
        cls.checkpoint = os.path.join(src, CHECKPOINT_IN_DAWN_SRC)
        if not src or not os.path.isfile(cls.checkpoint):
            raise AssertionError(f"torch is present but the checkpoint is not: set DAWN_SRC to a "
                                 f"DAWN-pytorch checkout with {CHECKPOINT_IN_DAWN_SRC} "
                                 f"(DAWN_SRC={src!r})")

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()

    def tearDown(self):
        self.tmp.cleanup()

    def test_rebuilt_graph_matches_the_shipped_one(self):
        status, out = converter("--checkpoint", self.checkpoint, "--out", self.tmp.name)
        print(out)
        self.assertEqual(status, 0, out)
        # One line per input: "<name> [N=..]: param <vs shipped>; <vs torch>  lm_aux ...".
        rows = re.findall(r"\[N=(\d+)\]: param (\S+); (\S+)  lm_aux (\S+); (\S+)", out)
        self.assertEqual([n for n, *_ in rows], ["8", "1", "1"], out)
        for _, *diffs in rows:
            self.assertTrue(all(float(d) < 1e-4 for d in diffs), out)
        yaws = re.findall(r"yaw: ours ([-+.\d]+)°, reference ([-+.\d]+)°", out)
        self.assertEqual(len(yaws), 2, out)
        for ours, ref in yaws:  # both photos are frontal
            self.assertLess(abs(float(ours)), 5.0)
            self.assertAlmostEqual(float(ours), float(ref), places=1)

        import onnxruntime as ort
        sess = ort.InferenceSession(os.path.join(self.tmp.name, cli.GRAPH_NAME),
                                    providers=["CPUExecutionProvider"])
        self.assertEqual([(i.name, i.shape) for i in sess.get_inputs()], [("input", ["N", 3, 120, 120])])
        self.assertEqual([(o.name, o.shape) for o in sess.get_outputs()],
                         [("param", ["N", 62]), ("lm_aux", ["N", 136])])

    def test_a_different_graph_fails_the_check(self):
        status, out = converter("--checkpoint", self.checkpoint, "--out", self.tmp.name,
                                "--tolerance", "1e-12")
        self.assertEqual(status, 1, out)
        self.assertIn("the graphs differ by", out)


if __name__ == "__main__":
    unittest.main()
