"""Exporter provenance: sha256 digests, git source, checkpoint discovery (no torch needed)."""

import hashlib
import os
import subprocess
import tempfile
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tools.export import provenance as P
from tools.export.checkpoints import CheckpointError, resolve_checkpoints, resolve_hubert


def touch(path, data=b"x"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


class Sha256Test(unittest.TestCase):
    def test_digest_matches_hashlib(self):
        with tempfile.TemporaryDirectory() as d:
            data = os.urandom(3 * (1 << 20) + 17)  # several read chunks
            p = os.path.join(d, "DAWN_128.pth")
            touch(p, data)
            self.assertEqual(P.sha256_file(p), "sha256:" + hashlib.sha256(data).hexdigest())
            self.assertRegex(P.sha256_file(p), r"^sha256:[0-9a-f]{64}$")
            q = os.path.join(d, "pbnet_seperate", "pose", "checkpoint_40000.pth.tar")
            touch(q, b"")
            dig = P.checkpoint_digests([p, q], base=d)
            self.assertEqual(set(dig), {"DAWN_128.pth", "pbnet_seperate/pose/checkpoint_40000.pth.tar"})
            self.assertEqual(dig["pbnet_seperate/pose/checkpoint_40000.pth.tar"],
                             "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
            self.assertEqual(set(P.checkpoint_digests([p])), {"DAWN_128.pth"})


class GitSourceTest(unittest.TestCase):
    def git(self, d, *a):
        subprocess.run(["git", "-C", d, *a], check=True, capture_output=True,
                       env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
                            "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"})

    def test_commit_and_dirty(self):
        with tempfile.TemporaryDirectory() as d:
            self.git(d, "init", "-q")
            touch(os.path.join(d, "DM_3", "a.py"), b"1")
            touch(os.path.join(d, "weights.onnx"), b"w")
            self.git(d, "add", ".")
            self.git(d, "commit", "-q", "-m", "c")
            head = subprocess.run(["git", "-C", d, "rev-parse", "--short", "HEAD"], capture_output=True,
                                  text=True).stdout.strip()
            self.assertEqual(P.git_commit(d), (head, False))
            self.assertEqual(P.source_string(d), f"Hanbo-Cheng/DAWN-pytorch {head}")
            os.remove(os.path.join(d, "weights.onnx"))  # outside the used paths: still clean
            self.assertEqual(P.git_commit(d), (head, False))
            touch(os.path.join(d, "DM_3", "a.py"), b"2")
            self.assertEqual(P.git_commit(d), (head, True))
            self.assertTrue(P.source_string(d).endswith(" +modified"))

    def test_not_a_repo(self):
        with tempfile.TemporaryDirectory() as d:
            self.assertEqual(P.git_commit(d), (None, False))
            self.assertIn("not a git checkout", P.source_string(d))


class CheckpointDiscoveryTest(unittest.TestCase):
    def layout(self, d, res=128, pbnet_dir="pbnet_seperate", skip=()):
        files = {
            "dawn": f"DAWN_{res}.pth",
            "lfg": {128: "LFG_128_1000ep.pth", 256: "LFG_256_400ep.pth"}[res],
            "pose": f"{pbnet_dir}/pose/checkpoint_40000.pth.tar",
            "pose_opt": f"{pbnet_dir}/pose/opt.yaml",
            "blink": f"{pbnet_dir}/blink/checkpoint_95000.pth.tar",
            "blink_opt": f"{pbnet_dir}/blink/opt.yaml",
        }
        for k, f in files.items():
            if k not in skip:
                touch(os.path.join(d, f))
        return files

    def test_complete(self):
        for res in (128, 256):
            with tempfile.TemporaryDirectory() as d:
                self.layout(d, res)
                r = resolve_checkpoints(d, res)
                self.assertEqual(os.path.basename(r["dawn"]), f"DAWN_{res}.pth")
                self.assertTrue(r["lfg"].endswith({128: "LFG_128_1000ep.pth", 256: "LFG_256_400ep.pth"}[res]))
                self.assertTrue(r["pbnet_pose"].endswith("pose/checkpoint_40000.pth.tar"))
                self.assertTrue(r["pbnet_blink_opt"].endswith("blink/opt.yaml"))

    def test_hf_folder_name_and_latest_step(self):
        with tempfile.TemporaryDirectory() as d:
            self.layout(d, pbnet_dir="pbnet")
            touch(os.path.join(d, "pbnet", "pose", "checkpoint_5000.pth.tar"))
            r = resolve_checkpoints(d, 128)
            self.assertTrue(r["pbnet_pose"].endswith("checkpoint_40000.pth.tar"))

    def test_other_lfg_name(self):
        with tempfile.TemporaryDirectory() as d:
            self.layout(d, skip=("lfg",))
            touch(os.path.join(d, "LFG_128_500ep.pth"))
            self.assertTrue(resolve_checkpoints(d, 128)["lfg"].endswith("LFG_128_500ep.pth"))

    def test_missing_all_listed(self):
        with tempfile.TemporaryDirectory() as d:
            self.layout(d, skip=("dawn", "blink", "pose_opt"))
            with self.assertRaises(CheckpointError) as cm:
                resolve_checkpoints(d, 128)
            msg = str(cm.exception)
            self.assertIn("DAWN_128.pth is missing", msg)
            self.assertIn("PBNet blink: no checkpoint_*.pth.tar", msg)
            self.assertIn("opt.yaml is missing", msg)
        with tempfile.TemporaryDirectory() as d:
            with self.assertRaises(CheckpointError) as cm:
                resolve_checkpoints(d, 256)
            msg = str(cm.exception)
            for needle in ("DAWN_256.pth", "LFG_256_400ep.pth", "PBNet pose", "PBNet blink"):
                self.assertIn(needle, msg)
        with self.assertRaises(CheckpointError):
            resolve_checkpoints("/nonexistent/dir", 128)

    def test_hubert(self):
        with tempfile.TemporaryDirectory() as d:
            with self.assertRaises(CheckpointError) as cm:
                resolve_hubert(d)
            self.assertIn("config.json is missing", str(cm.exception))
            self.assertIn("no weights", str(cm.exception))
            touch(os.path.join(d, "config.json"), b"{}")
            touch(os.path.join(d, "pytorch_model.bin"))
            self.assertEqual([os.path.basename(p) for p in resolve_hubert(d)], ["config.json", "pytorch_model.bin"])
            touch(os.path.join(d, "model.safetensors"))
            self.assertEqual(os.path.basename(resolve_hubert(d)[1]), "model.safetensors")
        with self.assertRaises(CheckpointError):
            resolve_hubert(None)


if __name__ == "__main__":
    unittest.main()
