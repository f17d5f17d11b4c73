"""Exporter command line: argument checks (no torch needed)."""

import os
import subprocess
import sys
import tempfile
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tools.export import cli


def fake_dawn_src(base):
    d = os.path.join(base, "dawn-src")
    for sub in ("DM_3", "LFG", "PBnet", "config"):
        os.makedirs(os.path.join(d, sub))
    return d


class CliTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.src = fake_dawn_src(self.tmp.name)
        self.out = os.path.join(self.tmp.name, "pack")

    def tearDown(self):
        self.tmp.cleanup()

    def args(self, *extra):
        ns = cli.build_parser().parse_args(["--dawn-src", self.src, "--resolution", "128",
                                           "--out", self.out, *extra])
        return ns

    def test_random_weights_minimal(self):
        a = cli.check_args(self.args("--random-weights"))
        self.assertTrue(a.random_weights)
        self.assertEqual(a.attention, "dense")
        self.assertEqual(a.verify_frames, [1, 7, 24, 40, 48])
        self.assertIsNone(a.only)
        self.assertFalse(a.fp16)

    def test_checkpoints_required_without_random(self):
        with self.assertRaises(cli.UsageError) as cm:
            cli.check_args(self.args())
        msg = str(cm.exception)
        self.assertIn("--checkpoints DIR is required", msg)
        self.assertIn("--hubert DIR is required", msg)  # every problem at once

    def test_random_weights_excludes_checkpoints(self):
        with self.assertRaises(cli.UsageError) as cm:
            cli.check_args(self.args("--random-weights", "--checkpoints", self.tmp.name))
        self.assertIn("cannot be combined", str(cm.exception))

    def test_checkpoint_dirs_must_exist(self):
        with self.assertRaises(cli.UsageError) as cm:
            cli.check_args(self.args("--checkpoints", "/nonexistent/ck", "--hubert", "/nonexistent/hub"))
        self.assertIn("/nonexistent/ck: not a directory", str(cm.exception))
        self.assertIn("/nonexistent/hub: not a directory", str(cm.exception))

    def test_trained_args_ok(self):
        ck = os.path.join(self.tmp.name, "ck")
        hub = os.path.join(self.tmp.name, "hub")
        os.makedirs(ck)
        os.makedirs(hub)
        a = cli.check_args(self.args("--checkpoints", ck, "--hubert", hub, "--fp16",
                                     "--attention", "banded", "--band-block", "16"))
        self.assertTrue(a.fp16)
        self.assertEqual(a.band_block, 16)

    def test_dawn_src_layout_checked(self):
        ns = cli.build_parser().parse_args(["--dawn-src", self.tmp.name, "--resolution", "256",
                                           "--out", self.out, "--random-weights"])
        with self.assertRaises(cli.UsageError) as cm:
            cli.check_args(ns)
        self.assertIn("is this a DAWN-pytorch checkout", str(cm.exception))

    def test_resolution_choices(self):
        with self.assertRaises(SystemExit):
            with open(os.devnull, "w") as devnull:
                saved, sys.stderr = sys.stderr, devnull
                try:
                    cli.build_parser().parse_args(["--dawn-src", self.src, "--resolution", "64",
                                                   "--out", self.out])
                finally:
                    sys.stderr = saved

    def test_verify_frames(self):
        a = cli.check_args(self.args("--random-weights", "--verify-frames", "1, 40,200"))
        self.assertEqual(a.verify_frames, [1, 40, 200])
        for bad in ("0,3", "a,b", ""):
            with self.assertRaises(cli.UsageError):
                cli.check_args(self.args("--random-weights", "--verify-frames", bad))

    def test_band_block_only_for_banded(self):
        with self.assertRaises(cli.UsageError):
            cli.check_args(self.args("--random-weights", "--band-block", "8"))
        with self.assertRaises(cli.UsageError):
            cli.check_args(self.args("--random-weights", "--attention", "banded", "--band-block", "0"))

    def test_out_not_empty_needs_force(self):
        os.makedirs(self.out)
        with open(os.path.join(self.out, "x"), "w") as f:
            f.write("x")
        with self.assertRaises(cli.UsageError) as cm:
            cli.check_args(self.args("--random-weights"))
        self.assertIn("--force", str(cm.exception))
        cli.check_args(self.args("--random-weights", "--force"))

    def test_only_roles(self):
        a = cli.check_args(self.args("--random-weights", "--only", "denoiser,portrait_encoder"))
        self.assertEqual(a.only, ["denoiser", "portrait_encoder"])
        with self.assertRaises(cli.UsageError) as cm:
            cli.check_args(self.args("--random-weights", "--only", "unet"))
        self.assertIn("unknown roles", str(cm.exception))

    def test_help_and_argument_errors_need_no_torch(self):
        code = ("import sys, runpy\n"
                "sys.argv = ['tools.export', '--help']\n"
                "try:\n    runpy.run_module('tools.export', run_name='__main__')\n"
                "except SystemExit as e:\n    assert e.code == 0, e.code\n"
                "bad = [m for m in ('torch', 'onnxruntime', 'transformers') if m in sys.modules]\n"
                "assert not bad, bad\n")
        r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("--random-weights", r.stdout)
        r = subprocess.run([sys.executable, "-m", "tools.export", "--dawn-src", self.src,
                            "--resolution", "128", "--out", self.out], cwd=ROOT,
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 2)
        self.assertIn("--checkpoints DIR is required", r.stderr)


if __name__ == "__main__":
    unittest.main()
