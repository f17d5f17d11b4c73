"""Pack graph signatures: extraction with onnx, tests/models/signature.json, comparison of packs
up to the resolution-dependent dims and Cs (no torch needed; onnx for the extraction tests)."""

import copy
import json
import os
import tempfile
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tools.export import contract as C, manifest as M, signature as SIG

SIGNATURE_JSON = os.path.join(ROOT, "tests", "models", "signature.json")
TINY_PACKS = [os.path.join(ROOT, "tests", "models", n) for n in ("tiny64", "tiny128")]

import onnx
from onnx import TensorProto, helper


def load_reference():
    with open(SIGNATURE_JSON, encoding="utf-8") as f:
        return json.load(f)


def write_fake_pack(d, resolution, cs, mutate=None):
    """A pack whose graphs only *declare* the contract I/O (no real computation)."""
    for role in C.ROLES:
        ins, outs = C.graph_io(role, resolution, cs=cs)
        if mutate:
            ins, outs = mutate(role, ins, outs)

        def vi(name, dims):
            return helper.make_tensor_value_info(name, TensorProto.FLOAT, dims)

        nodes = [helper.make_node("Identity", [ins[0][0]], [o]) for o, _ in outs]
        g = helper.make_graph(nodes, role, [vi(n, d) for n, d in ins], [vi(n, d) for n, d in outs])
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
        m.ir_version = 8
        onnx.save(m, os.path.join(d, C.graph_file(role)))
    M.write_manifest(d, M.build_manifest(resolution, "fp32", "random"))


class ReferenceSignatureTest(unittest.TestCase):
    def test_reference_matches_contract(self):
        sig = load_reference()
        self.assertEqual(sig["format"], SIG.SIGNATURE_FORMAT)
        self.assertEqual(sig["resolution"], 128)
        self.assertEqual(SIG.check_contract(sig), [])
        self.assertEqual(set(sig["graphs"]), set(C.ROLES))
        # symbolic axes recorded as strings, everything float32
        den = sig["graphs"]["denoiser"]
        self.assertEqual(den["inputs"][0], {"name": "x_t", "dtype": "float32", "dims": [1, 3, "F", 32, 32]})
        self.assertEqual(sig["graphs"]["audio_encoder"]["outputs"][0]["dims"], [1, "Th", 1024])
        for g in sig["graphs"].values():
            for io in g["inputs"] + g["outputs"]:
                self.assertEqual(io["dtype"], "float32")

    def test_normalize(self):
        n = SIG.normalize_signature(load_reference())
        pe = {o["name"]: o["dims"] for o in n["graphs"]["portrait_encoder"]["outputs"]}
        self.assertEqual(pe, {"skip0": [1, 64, "S", "S"], "skip1": [1, 128, "S/2", "S/2"],
                              "feat": [1, 256, "s", "s"], "static": [1, "Cs", "s", "s"]})
        dec = n["graphs"]["decoder"]
        self.assertEqual(dec["inputs"][4]["dims"], ["F", "s", "s", 2])
        self.assertEqual(dec["outputs"][0]["dims"], ["F", 3, "S", "S"])

    def test_compare_detects_changes(self):
        ref = load_reference()
        self.assertEqual(SIG.compare_signatures(ref, ref), [])
        other = copy.deepcopy(ref)
        other["graphs"]["denoiser"]["inputs"][3]["dims"] = [1, "F", 1024]
        other["graphs"]["decoder"]["outputs"][0]["name"] = "prediction"
        other["graphs"]["pbnet_pose"]["inputs"][1]["dims"] = [50, 1, 256]   # N frozen
        diffs = SIG.compare_signatures(other, ref)
        self.assertEqual(len(diffs), 3, diffs)
        self.assertTrue(any("`cond`" in d for d in diffs))
        self.assertTrue(any("prediction" in d for d in diffs))
        self.assertTrue(any("`z`" in d for d in diffs))
        probs = SIG.check_contract(other)
        self.assertTrue(any("cond" in p for p in probs))
        self.assertTrue(any("missing output `frames`" in p for p in probs))
        self.assertTrue(any("unexpected output `prediction`" in p for p in probs))


class ExtractionTest(unittest.TestCase):
    def test_fake_tiny_pack_matches_reference(self):
        for res, cs in ((64, 272), (256, 64), (128, 64)):
            with tempfile.TemporaryDirectory() as d:
                write_fake_pack(d, res, cs)
                sig = SIG.pack_signature(d)
                self.assertEqual(sig["resolution"], res)
                self.assertEqual(SIG.check_contract(sig), [])
                self.assertEqual(SIG.compare_signatures(sig, load_reference()), [])
                self.assertEqual(SIG.main([d, "--compare", SIGNATURE_JSON]), 0)

    def test_fake_pack_with_wrong_static_dim(self):
        def mutate(role, ins, outs):
            if role == "denoiser":
                ins = [(n, [1, 100, 16, 16] if n == "static" else d) for n, d in ins]
            return ins, outs

        with tempfile.TemporaryDirectory() as d:
            write_fake_pack(d, 64, 272, mutate)
            sig = SIG.pack_signature(d)
            self.assertTrue(any("static channel count differs" in p for p in SIG.check_contract(sig)))

    def test_fake_pack_with_fixed_axis(self):
        def mutate(role, ins, outs):
            if role == "audio_encoder":
                ins = [("input_values", [1, 16000])]
            return ins, outs

        with tempfile.TemporaryDirectory() as d:
            write_fake_pack(d, 64, 272, mutate)
            sig = SIG.pack_signature(d)
            self.assertEqual(sig["graphs"]["audio_encoder"]["inputs"][0]["dims"], [1, 16000])
            diffs = SIG.compare_signatures(sig, load_reference())
            self.assertEqual(len(diffs), 1)
            self.assertIn("input_values", diffs[0])
            out = os.path.join(d, "sig.json")
            self.assertEqual(SIG.main([d, "--compare", SIGNATURE_JSON, "--write", out]), 1)
            with open(out) as f:
                self.assertEqual(json.load(f)["graphs"]["audio_encoder"]["inputs"][0]["dims"], [1, 16000])

    def test_tiny_packs_match_reference(self):
        found = [p for p in TINY_PACKS if os.path.isfile(os.path.join(p, "manifest.json"))]
        if not found:
            self.skipTest("no tests/models/tiny* pack")
        for p in found:
            sig = SIG.pack_signature(p)
            self.assertEqual(SIG.check_contract(sig), [], p)
            self.assertEqual(SIG.compare_signatures(sig, load_reference()), [], p)


if __name__ == "__main__":
    unittest.main()
