"""The exporter's checks of the checkpoint files and of graph shapes that need no torch.

The loading itself (strict state dicts, truncated files, pickles, opt.yaml, HuBERT weights) is
tested with stand-ins in upstream's container formats in tools/torch_tests/test_export_loading.py.
"""

import json
import os
import subprocess
import sys
import tempfile
import unittest

from tools.export import checkpoints as CK
from tools.export import contract as C
from tools.export.checkpoints import CheckpointError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LFS = (b"version https://git-lfs.github.com/spec/v1\n"
       b"oid sha256:4d7a2146e3b1c4f0b7b6ee1f4d1b4c2a5d6e7f8091a2b3c4d5e6f708192a3b4c\n"
       b"size 599462321\n")


def write(path, data=b"PK\x03\x04 stand-in"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def hf_layout(d, res=128):
    """The file names `hf download Hanbo-Cheng/DAWN` and the HuBERT folder give."""
    names = [f"DAWN_{res}.pth", {128: "LFG_128_1000ep.pth", 256: "LFG_256_400ep.pth"}[res],
             "pbnet/pose/checkpoint_40000.pth.tar", "pbnet/pose/opt.yaml",
             "pbnet/blink/checkpoint_95000.pth.tar", "pbnet/blink/opt.yaml"]
    for n in names:
        write(os.path.join(d, "ck", n))
    hub = os.path.join(d, "hubert")
    write(os.path.join(hub, "config.json"), json.dumps(dict(CK.HUBERT_LARGE, model_type="hubert")).encode())
    write(os.path.join(hub, "pytorch_model.bin"))
    return os.path.join(d, "ck"), hub


class FileCheckTest(unittest.TestCase):
    def test_lfs_pointer_and_empty_file(self):
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "DAWN_128.pth")
            write(p, LFS)
            with self.assertRaises(CheckpointError) as cm:
                CK.check_file(p, CK.HF_DAWN)
            msg = str(cm.exception)
            self.assertIn(p, msg)
            self.assertIn("Git LFS pointer", msg)
            self.assertIn("git lfs pull", msg)
            self.assertEqual(len(msg.splitlines()), 1)
            write(p, b"")
            with self.assertRaises(CheckpointError) as cm:
                CK.check_file(p, CK.HF_DAWN)
            self.assertIn("empty file", str(cm.exception))
            write(p)
            CK.check_file(p, CK.HF_DAWN)

    def test_resolve_rejects_pointers(self):
        with tempfile.TemporaryDirectory() as d:
            ck, hub = hf_layout(d)
            self.assertTrue(CK.resolve_checkpoints(ck, 128)["pbnet_pose"].endswith(
                "pbnet/pose/checkpoint_40000.pth.tar"))
            write(os.path.join(ck, "pbnet", "blink", "checkpoint_95000.pth.tar"), LFS)
            with self.assertRaises(CheckpointError) as cm:
                CK.resolve_checkpoints(ck, 128)
            self.assertIn("blink/checkpoint_95000.pth.tar: a Git LFS pointer", str(cm.exception))
            write(os.path.join(hub, "pytorch_model.bin"), LFS)
            with self.assertRaises(CheckpointError) as cm:
                CK.resolve_hubert(hub)
            self.assertIn("pytorch_model.bin: a Git LFS pointer", str(cm.exception))

    def test_hubert_config_must_be_large(self):
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "config.json")
            write(p, json.dumps(dict(CK.HUBERT_LARGE, model_type="hubert")).encode())
            CK.check_hubert_config(p)
            write(p, json.dumps(dict(CK.HUBERT_LARGE, model_type="hubert", hidden_size=768,
                                     num_hidden_layers=12)).encode())
            with self.assertRaises(CheckpointError) as cm:
                CK.check_hubert_config(p)
            msg = str(cm.exception)
            self.assertIn(f"{p}: not HuBERT-Large: hidden_size 768", msg)
            self.assertIn("facebook/hubert-large-ls960-ft", msg)
            write(p, json.dumps(dict(CK.HUBERT_LARGE, model_type="wav2vec2")).encode())
            with self.assertRaises(CheckpointError) as cm:
                CK.check_hubert_config(p)
            self.assertIn("model_type 'wav2vec2'", str(cm.exception))
            write(p, b"{not json")
            with self.assertRaises(CheckpointError) as cm:
                CK.check_hubert_config(p)
            self.assertIn("not a readable config", str(cm.exception))


class CommandLineTest(unittest.TestCase):
    """`python -m tools.export` stops on a bad file before it needs torch: one line, exit 2."""

    def run_export(self, ck, hub, d):
        os.makedirs(os.path.join(d, "src", "DM_3"))
        for sub in ("LFG", "PBnet", "config"):
            os.makedirs(os.path.join(d, "src", sub))
        return subprocess.run(
            [sys.executable, "-m", "tools.export", "--dawn-src", os.path.join(d, "src"),
             "--checkpoints", ck, "--hubert", hub, "--resolution", "128",
             "--out", os.path.join(d, "pack")], cwd=ROOT, capture_output=True, text=True)

    def test_lfs_pointer_exits_2_naming_the_file(self):
        with tempfile.TemporaryDirectory() as d:
            ck, hub = hf_layout(d)
            write(os.path.join(ck, "LFG_128_1000ep.pth"), LFS)
            r = self.run_export(ck, hub, d)
            self.assertEqual(r.returncode, 2, r.stderr)
            lines = r.stderr.strip().splitlines()
            self.assertEqual(len(lines), 1, r.stderr)
            self.assertIn(os.path.join(ck, "LFG_128_1000ep.pth") + ": a Git LFS pointer", lines[0])

    def test_small_hubert_exits_2_naming_the_config(self):
        with tempfile.TemporaryDirectory() as d:
            ck, hub = hf_layout(d)
            write(os.path.join(hub, "config.json"),
                  json.dumps(dict(CK.HUBERT_LARGE, model_type="hubert", hidden_size=64)).encode())
            r = self.run_export(ck, hub, d)
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
            self.assertIn("config.json: not HuBERT-Large: hidden_size 64", r.stderr)

    def test_unsafe_unpickling_is_not_for_random_weights(self):
        r = subprocess.run([sys.executable, "-m", "tools.export", "--dawn-src", ROOT,
                            "--random-weights", "--allow-unsafe-unpickling", "--resolution", "128",
                            "--out", "/nonexistent/pack"], cwd=ROOT, capture_output=True, text=True)
        self.assertEqual(r.returncode, 2)
        self.assertIn("--allow-unsafe-unpickling cannot be combined with --random-weights", r.stderr)


class ShapeCheckTest(unittest.TestCase):
    def test_declared_shapes(self):
        ok = {"input_values": [1, "T"], "last_hidden_state": [1, "Th", 1024]}
        self.assertEqual(C.shape_mismatches("audio_encoder", 128, 64, ok), [])
        narrow = {"last_hidden_state": [1, "Th", 64]}
        self.assertEqual(C.shape_mismatches("audio_encoder", 128, 64, narrow),
                         ["audio_encoder.onnx: `last_hidden_state` is [1, Th, 64], the contract "
                          "says [1, Th, 1024]"])
        frozen = {"eps": [1, 3, 24, 32, 32]}  # a dynamic axis traced as fixed
        self.assertEqual(len(C.shape_mismatches("denoiser", 128, 64, frozen)), 1)
        unknown = {"eps": [1, 3, None, 32, None]}
        self.assertEqual(C.shape_mismatches("denoiser", 128, 64, unknown), [])
        self.assertEqual(len(C.shape_mismatches("denoiser", 128, 64, {"eps": [1, 3, "F", 32]})), 1)
        # torch 2.15 leaves PBNet's batch dim symbolic behind a Where: unknown, not a mismatch
        self.assertEqual(C.shape_mismatches("pbnet_pose", 128, 64,
                                            {"delta": ["Wheredelta_dim_0", "N", 6]}), [])

    def test_output_shapes_of_a_run(self):
        self.assertEqual(C.bind([1, "Th", 1024], {"T": 720}), [1, 2, 1024])
        good = {"last_hidden_state": [1, 2, 1024]}
        self.assertEqual(C.shape_mismatches("audio_encoder", 128, 64, good, sizes={"T": 720}), [])
        for bad in ([1, 2, 64], [1, 3, 1024], [2, 1024]):
            self.assertEqual(len(C.shape_mismatches("audio_encoder", 128, 64,
                                                    {"last_hidden_state": bad}, sizes={"T": 720})), 1)
        self.assertEqual(C.shape_mismatches("portrait_encoder", 128, "Cs",
                                            {"static": [1, 80, 32, 32]}, sizes={"_": 0}), [])
        self.assertEqual(len(C.shape_mismatches("portrait_encoder", 128, 64,
                                                {"static": [1, 80, 32, 32]}, sizes={"_": 0})), 1)


if __name__ == "__main__":
    unittest.main()
