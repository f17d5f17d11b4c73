"""Exporter manifest: writing and validation against docs/model-pack.md (no torch needed)."""

import copy
import json
import os
import re
import tempfile
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tools.export import TOOL, contract as C, manifest as M


def doc_example():
    """The manifest example of docs/model-pack.md (first ```json block)."""
    with open(os.path.join(ROOT, "docs", "model-pack.md"), encoding="utf-8") as f:
        text = f.read()
    block = re.search(r"```json\n(.*?)\n```", text, re.S).group(1)
    return json.loads(block)


def keys(d, prefix=""):
    out = set()
    for k, v in d.items():
        out.add(prefix + k)
        if isinstance(v, dict) and k not in ("checkpoints",):
            out |= keys(v, prefix + k + ".")
    return out


class ManifestTest(unittest.TestCase):
    def setUp(self):
        self.m = M.build_manifest(128, "fp32", "random", checkpoints={"DAWN_128.pth": "sha256:" + "0" * 64},
                                  source="Hanbo-Cheng/DAWN-pytorch 76c44b8", created="2026-11-25T12:00:00Z")

    def test_built_manifest_is_valid(self):
        self.assertEqual(M.validate_manifest(self.m), [])
        for res in (128, 256):
            for prec in ("fp32", "fp16"):
                self.assertEqual(M.validate_manifest(M.build_manifest(res, prec, "trained")), [])

    def test_doc_example_is_valid_and_has_our_keys(self):
        ex = doc_example()
        self.assertEqual(M.validate_manifest(ex), [])
        ours = keys(self.m)
        theirs = keys(ex)
        self.assertEqual(theirs - ours, set(), "keys of the documented manifest that we do not write")
        # extra keys only under provenance (informational, ignored by the engine)
        self.assertTrue(all(k.startswith("provenance.") for k in ours - theirs), ours - theirs)
        # the fixed values agree with the document
        for sect in ("audio", "pbnet", "diffusion", "defaults", "graphs"):
            self.assertEqual(self.m[sect], ex[sect], sect)
        for k in ("format", "version", "fps", "sample_rate", "resolution", "latent_size"):
            self.assertEqual(self.m[k], ex[k], k)

    def test_provenance(self):
        p = self.m["provenance"]
        self.assertEqual(p["kind"], "export")
        self.assertEqual(p["weights"], "random")
        self.assertEqual(p["precision"], "fp32")
        self.assertEqual(p["tool"], TOOL)
        self.assertTrue(TOOL.startswith("gst-dawn-export "))
        self.assertEqual(p["source"], "Hanbo-Cheng/DAWN-pytorch 76c44b8")
        self.assertIn("DAWN_128.pth", p["checkpoints"])
        self.assertIn("random weights", self.m["name"])
        self.assertRegex(M.build_manifest(256, "fp16", "trained")["provenance"]["created"],
                         r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        m = M.build_manifest(128, "fp32", "trained", extra_provenance={"attention": "banded"})
        self.assertEqual(m["provenance"]["attention"], "banded")

    def test_write_and_validate_pack_dir(self):
        with tempfile.TemporaryDirectory() as d:
            for role in C.ROLES:
                open(os.path.join(d, C.graph_file(role)), "wb").close()
            M.write_manifest(d, self.m)
            loaded = M.load_manifest(d)
            self.assertEqual(loaded, self.m)
            self.assertEqual(M.validate_manifest(loaded, d), [])
            os.remove(os.path.join(d, "denoiser.onnx"))
            self.assertEqual(M.validate_manifest(loaded, d), ["denoiser: graph file denoiser.onnx is missing"])

    def bad(self, mutate, *needles):
        m = copy.deepcopy(self.m)
        mutate(m)
        problems = M.validate_manifest(m)
        self.assertTrue(problems, "expected a problem")
        joined = "\n".join(problems)
        for n in needles:
            self.assertIn(n, joined)
        return problems

    def test_rules(self):
        self.bad(lambda m: m.update(format="other"), "format")
        self.bad(lambda m: m.update(version=2), "version")
        self.bad(lambda m: m.update(resolution=96), "resolution is 96")
        self.bad(lambda m: m.update(latent_size=64), "latent_size is 64, expected resolution/4 = 32")
        self.bad(lambda m: m.update(fps=30), "fps")
        self.bad(lambda m: m.update(sample_rate=48000), "sample_rate")
        self.bad(lambda m: m["audio"].update(feature_dim=768), "audio.feature_dim")
        self.bad(lambda m: m["audio"].update(hop_samples=160), "audio.hop_samples")
        self.bad(lambda m: m["audio"].update(window_samples=320), "audio.window_samples")
        self.bad(lambda m: m["audio"].update(normalize_eps=0), "audio.normalize_eps")
        self.bad(lambda m: m["pbnet"].update(noise_dim=0), "pbnet.noise_dim")
        self.bad(lambda m: m["pbnet"].update(pose_dim=7), "pbnet.pose_dim")
        self.bad(lambda m: m["pbnet"].update(pose_min=[0] * 5), "pbnet.pose_min")
        self.bad(lambda m: m["pbnet"].update(pose_max=[-100] * 6), "pose_min must be < pbnet.pose_max")
        self.bad(lambda m: m["diffusion"].update(schedule="linear"), "diffusion.schedule")
        self.bad(lambda m: m["diffusion"].update(train_timesteps=1), "train_timesteps")
        self.bad(lambda m: m["diffusion"].update(cosine_s=0), "cosine_s")
        self.bad(lambda m: m["diffusion"].update(max_beta=1.0), "max_beta")
        self.bad(lambda m: m["diffusion"].update(sampling_steps=1000), "sampling_steps")
        self.bad(lambda m: m["diffusion"].update(sampling_steps=0), "sampling_steps")
        self.bad(lambda m: m["diffusion"].update(eta=-1), "eta")
        self.bad(lambda m: m["diffusion"].update(threshold_quantile=0), "threshold_quantile")
        self.bad(lambda m: m["diffusion"].update(latent_channels=4), "latent_channels")
        self.bad(lambda m: m["diffusion"].update(condition_dim=1024), "condition_dim is 1024")
        self.bad(lambda m: m["defaults"].update(init_pose=[0] * 7), "defaults.init_pose")
        self.bad(lambda m: m["defaults"].update(init_eye=[0.3]), "defaults.init_eye")
        self.bad(lambda m: m["graphs"].pop("decoder"), "graphs.decoder is missing")
        self.bad(lambda m: m["provenance"].update(precision="int8"), "provenance.precision")
        self.bad(lambda m: m.pop("provenance"), "provenance")

    def test_missing_keys_all_reported(self):
        m = copy.deepcopy(self.m)
        del m["audio"]["feature_rate"]
        del m["diffusion"]["attention_window"]
        problems = M.validate_manifest(m)
        self.assertIn("manifest.json: missing key `audio.feature_rate`", problems)
        self.assertIn("manifest.json: missing key `diffusion.attention_window`", problems)

    def test_unknown_keys_ignored(self):
        m = copy.deepcopy(self.m)
        m["future_key"] = {"x": 1}
        m["diffusion"]["new_option"] = True
        self.assertEqual(M.validate_manifest(m), [])

    def test_contract_constants(self):
        self.assertEqual(C.COND_DIM, 1032)
        self.assertEqual(C.ROLES, ("audio_encoder", "pbnet_pose", "pbnet_blink", "portrait_encoder",
                                   "denoiser", "decoder"))
        ins, outs = C.graph_io("denoiser", 256, cs=64)
        self.assertEqual(ins, [("x_t", [1, 3, "F", 64, 64]), ("static", [1, 64, 64, 64]),
                               ("timestep", [1]), ("cond", [1, "F", 1032])])
        self.assertEqual(outs, [("eps", [1, 3, "F", 64, 64])])
        ins, outs = C.graph_io("portrait_encoder", 128, cs=64)
        self.assertEqual([n for n, _ in outs], ["skip0", "skip1", "feat", "static"])
        self.assertEqual(dict(outs)["skip1"], [1, 128, 64, 64])


if __name__ == "__main__":
    unittest.main()
