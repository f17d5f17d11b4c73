"""Export-time patches vs upstream modules (the torch suite: needs torch and DAWN_SRC).

    DAWN_SRC=DAWN-pytorch python -m unittest tools.torch_tests.test_export_patches
"""

import copy
import importlib
import os
import unittest

from tools.torch_tests import preconditions

torch = preconditions.torch()


class PatchTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        from tools.export import patches, upstream

        upstream.add_dawn_src(preconditions.dawn_src())
        cls.P = patches
        cls.U = upstream
        cls.m = importlib.import_module(upstream.UNET_MODULE)
        torch.manual_seed(0)

    def test_bias_table_exact(self):
        rpb = self.m.RelativePositionBias(heads=8, max_distance=32, window_width=40)
        with torch.no_grad():
            rpb.relative_attention_bias.weight.normal_()
        ig = self.P.InGraphRelPosBias(rpb, 40)
        self.assertEqual(ig.k, 27)
        for n in (1, 2, 27, 28, 41, 42, 300):
            self.assertTrue(torch.equal(ig(n), rpb(n, device="cpu")), n)

    def test_pbnet_bias_table_exact(self):
        mod = importlib.import_module("src.models.architectures.transformerreemb5")
        rpb = mod.RelativePositionBias(heads=4, num_buckets=128, max_distance=128).eval()
        with torch.no_grad():
            rpb.relative_attention_bias.weight.normal_()
        ig = self.P.InGraphRelPosBias(rpb, 200)
        self.assertEqual(ig.k, 123)
        import contextlib
        import io

        with contextlib.redirect_stdout(io.StringIO()):
            for n in (1, 124, 201, 202, 450):
                self.assertTrue(torch.equal(ig(n), rpb(n, device="cpu")), n)

    def test_rope_and_banded_attention_equal_dense(self):
        from rotary_embedding_torch import RotaryEmbedding

        att = self.m.Attention(64, heads=8, dim_head=32, rotary_emb=RotaryEmbedding(32)).eval()
        rpb = self.m.RelativePositionBias(heads=8, max_distance=32, window_width=40)
        with torch.no_grad():
            rpb.relative_attention_bias.weight.normal_()
        att2 = copy.deepcopy(att)
        self.assertEqual(self.P.patch_rotary(att2), 1)
        dense = self.P.InGraphRelPosBias(rpb, 40)
        for block in (40, 7):
            band = self.P.BandedTemporalAttention(att2, block, 40)
            bias_b = self.P.InGraphRelPosBias(rpb, 40, band_block=block)(0)
            for n in (1, 7, 41, 45, 100):
                x = torch.randn(1, 3, n, 64)
                with torch.no_grad():
                    ref = att(x, pos_bias=rpb(n, device="cpu"))
                    self.assertLess(float((att2(x, pos_bias=dense(n)) - ref).abs().max()), 1e-5)
                    self.assertLess(float((band(x, pos_bias=bias_b) - ref).abs().max()), 1e-5)

    def test_split_init_conv_exact(self):
        conv = torch.nn.Conv3d(275, 64, (1, 7, 7), padding=(0, 3, 3))
        x = torch.randn(1, 3, 5, 16, 16)
        fea = torch.randn(1, 272, 16, 16)
        with torch.no_grad():
            ref = conv(torch.cat([x, fea[:, :, None].expand(-1, -1, 5, -1, -1)], 1))
            static = self.P.fold_static(conv, fea)
            got = self.P.SplitInitConv(conv)(torch.cat([x, static[:, :, None].expand(-1, -1, 5, -1, -1)], 1))
        self.assertLess(float((got - ref).abs().max()), 1e-4)

    def test_face_loc_reproduction_is_deterministic(self):
        src = os.path.abspath(preconditions.dawn_src())
        a, _ = self.U.build_flow_diffusion(src, 128)
        b, _ = self.U.build_flow_diffusion(src, 256)
        for k, v in a.face_loc_emb.state_dict().items():
            self.assertTrue(torch.equal(v, b.face_loc_emb.state_dict()[k]), k)


if __name__ == "__main__":
    unittest.main()
