"""The exporter's checkpoint loading against small stand-ins in upstream's container formats
(the torch suite): ``torch.save`` of a dict of state dicts (DAWN_*.pth, LFG_*.pth), a bare state
dict (PBNet's checkpoint_*.pth.tar), an ACTOR-style opt.yaml, a ``HubertForCTC.save_pretrained``
folder (safetensors and pytorch_model.bin). Every failure must be one CheckpointError line that
names the file and the fix; the released files' layout must load bit for bit.

    DAWN_SRC=DAWN-pytorch python -m unittest tools.torch_tests.test_export_loading
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import unittest

from tools.torch_tests import preconditions

torch = preconditions.torch()

from tools.export import checkpoints as CK  # noqa: E402
from tools.export import upstream as U  # noqa: E402
from tools.export.checkpoints import CheckpointError  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LFS = b"version https://git-lfs.github.com/spec/v1\noid sha256:00\nsize 599462321\n"


def small_net():
    torch.manual_seed(3)
    return torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.LayerNorm(3))


def one_line(test, exc, *needles):
    msg = str(exc)
    test.assertEqual(len(msg.splitlines()), 1, msg)
    for n in needles:
        test.assertIn(n, msg)
    return msg


class StateDictLoadingTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.d = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def save(self, name, obj):
        path = os.path.join(self.d, name)
        torch.save(obj, path)
        return path

    def test_released_layout_loads_bit_for_bit(self):
        src = small_net()
        path = self.save("LFG_128_1000ep.pth", {"generator": src.state_dict(),
                                                "region_predictor": {}, "bg_predictor": {}})
        dst = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.LayerNorm(3))
        U.load_strict(dst, U._load_key(path, "generator"), path, "LFG generator")
        for k, v in src.state_dict().items():
            self.assertTrue(torch.equal(v, dst.state_dict()[k]), k)
        pb = self.save("checkpoint_40000.pth.tar", src.state_dict())  # PBNet: a bare state dict
        U.load_pbnet(small_net(), pb)

    def test_missing_unexpected_and_reshaped_tensors(self):
        sd = small_net().state_dict()
        del sd["1.bias"]
        sd["2.weight"] = torch.zeros(3)
        path = self.save("DAWN_128.pth", {"diffusion": sd})
        with self.assertRaises(CheckpointError) as cm:
            U.load_strict(small_net(), U._load_key(path, "diffusion"), path, "A2V-FDM diffusion")
        one_line(self, cm.exception, path, "1 tensors missing (1.bias)", "1 unexpected (2.weight)",
                 "Hanbo-Cheng/DAWN")
        sd = small_net().state_dict()
        sd["0.weight"] = torch.zeros(3, 5)
        path = self.save("DAWN_128.pth", {"diffusion": sd})
        with self.assertRaises(CheckpointError) as cm:
            U.load_strict(small_net(), U._load_key(path, "diffusion"), path, "A2V-FDM diffusion")
        one_line(self, cm.exception, "1 of another shape (0.weight [3, 5] vs [3, 4])")
        with self.assertRaises(CheckpointError) as cm:
            U._load_key(path, "generator")
        one_line(self, cm.exception, path, "expected a dict with key 'generator'")

    def test_truncated_pointer_and_pickled_code(self):
        path = self.save("LFG_128_1000ep.pth", {"generator": small_net().state_dict()})
        with open(path, "rb") as f:
            data = f.read()
        with open(path, "wb") as f:
            f.write(data[:len(data) // 2])
        with self.assertRaises(CheckpointError) as cm:
            U._torch_load(path)
        one_line(self, cm.exception, path, "truncated or damaged", "download it again")
        with open(path, "wb") as f:
            f.write(LFS)
        with self.assertRaises(CheckpointError) as cm:
            U._torch_load(path)
        one_line(self, cm.exception, path, "Git LFS pointer")
        path = self.save("checkpoint_95000.pth.tar", {"model": small_net().state_dict(),
                                                      "opt": argparse.Namespace(lr=1)})
        with self.assertRaises(CheckpointError) as cm:
            U._torch_load(path)
        one_line(self, cm.exception, path, "pickled Python objects", "--allow-unsafe-unpickling")
        self.assertIn("opt", U._torch_load(path, allow_pickle=True))


class OptYamlTest(unittest.TestCase):
    def write(self, d, text):
        path = os.path.join(d, "opt.yaml")
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return path

    def test_plain_yaml_only(self):
        with tempfile.TemporaryDirectory() as d:
            opt = CK.load_opt_yaml(self.write(d, "modeltype: cvae\nnum_layers: 2\nlambdas:\n  kl: 0.004\n"))
            self.assertEqual(opt["num_layers"], 2)
            path = self.write(d, "modeltype: cvae\nfolder: !!python/object/apply:os.getcwd []\n")
            with self.assertRaises(CheckpointError) as cm:
                CK.load_opt_yaml(path)
            one_line(self, cm.exception, path, "not plain YAML", "line 2", "Python tags are not read")
            path = self.write(d, "- a\n- b\n")
            with self.assertRaises(CheckpointError) as cm:
                CK.load_opt_yaml(path)
            one_line(self, cm.exception, path, "expected a mapping")


class HubertLoadingTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        from transformers import HubertConfig, HubertForCTC

        cfg = HubertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                           intermediate_size=64, conv_dim=[16] * 7, num_conv_pos_embeddings=16,
                           num_conv_pos_embedding_groups=2, vocab_size=32,
                           do_stable_layer_norm=True, feat_extract_norm="layer")
        torch.manual_seed(0)
        cls.ctc = HubertForCTC(cfg)  # what facebook/hubert-large-ls960-ft is, at a small size
        cls.tmp = tempfile.TemporaryDirectory()

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def folder(self, name, safetensors=True):
        d = os.path.join(self.tmp.name, name)
        self.ctc.save_pretrained(d, safe_serialization=safetensors)
        return d, os.path.join(d, "model.safetensors" if safetensors else "pytorch_model.bin")

    def test_complete_folder_loads_bit_for_bit(self):
        for safetensors in (True, False):
            d, w = self.folder(f"ok{int(safetensors)}", safetensors)
            m = U.load_hubert_weights(d, w)
            ref = self.ctc.hubert.state_dict()
            for k, v in m.state_dict().items():
                self.assertTrue(torch.equal(v, ref[k]), k)

    def test_missing_tensor_and_truncated_file(self):
        from safetensors.torch import load_file, save_file

        d, w = self.folder("missing")
        sd = load_file(w)
        del sd["hubert.encoder.layers.1.feed_forward.output_dense.bias"]
        save_file(sd, w, metadata={"format": "pt"})
        with self.assertRaises(CheckpointError) as cm:
            U.load_hubert_weights(d, w)
        one_line(self, cm.exception, w, "1 tensors missing (encoder.layers.1.feed_forward.output_dense.bias)")
        d, w = self.folder("truncated")
        with open(w, "rb") as f:
            data = f.read()
        with open(w, "wb") as f:
            f.write(data[:len(data) // 3])
        with self.assertRaises(CheckpointError) as cm:
            U.load_hubert_weights(d, w)
        one_line(self, cm.exception, w, "truncated or damaged")

    def test_the_small_config_is_not_large(self):
        d, _ = self.folder("small")
        with self.assertRaises(CheckpointError) as cm:
            U.build_hubert(d)
        one_line(self, cm.exception, os.path.join(d, "config.json"), "not HuBERT-Large")


class ExporterCommandTest(unittest.TestCase):
    """A strict-load failure through `python -m tools.export`: one line on stderr, exit 2."""

    def test_wrong_lfg_exits_2(self):
        dawn_src = preconditions.dawn_src()
        with tempfile.TemporaryDirectory() as d:
            ck, hub = os.path.join(d, "ck"), os.path.join(d, "hub")
            for kind, step in (("pose", 40000), ("blink", 95000)):
                os.makedirs(os.path.join(ck, "pbnet", kind))
                torch.save(small_net().state_dict(),
                           os.path.join(ck, "pbnet", kind, f"checkpoint_{step}.pth.tar"))
                with open(os.path.join(ck, "pbnet", kind, "opt.yaml"), "w") as f:
                    f.write("modeltype: cvae\narchiname: transformerreemb5\n")
            torch.save({"generator": small_net().state_dict()}, os.path.join(ck, "LFG_128_1000ep.pth"))
            torch.save({"diffusion": small_net().state_dict()}, os.path.join(ck, "DAWN_128.pth"))
            os.makedirs(hub)
            with open(os.path.join(hub, "config.json"), "w") as f:
                json.dump(dict(CK.HUBERT_LARGE, model_type="hubert"), f)
            torch.save({}, os.path.join(hub, "pytorch_model.bin"))
            r = subprocess.run([sys.executable, "-m", "tools.export", "--dawn-src", dawn_src,
                                "--checkpoints", ck, "--hubert", hub, "--resolution", "128",
                                "--out", os.path.join(d, "pack"), "--threads", "1"],
                               cwd=ROOT, capture_output=True, text=True, timeout=900)
            self.assertEqual(r.returncode, 2, r.stderr[-2000:])
            errors = [l for l in r.stderr.splitlines() if l.startswith("error:")]
            self.assertEqual(len(errors), 1, r.stderr[-2000:])
            self.assertIn(os.path.join(ck, "LFG_128_1000ep.pth") + ": the LFG generator weights do "
                          "not fit DAWN's network", errors[0])
            self.assertIn("tensors missing", errors[0])
            self.assertEqual(r.stderr.strip().splitlines()[-1], errors[0])


if __name__ == "__main__":
    unittest.main()
