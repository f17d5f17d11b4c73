"""Speed rewrites of the U-Net (tools/export/fast_unet.py) vs the upstream modules: same results up
to float rounding (the torch suite: needs torch and DAWN_SRC).

    DAWN_SRC=DAWN-pytorch python -m unittest tools.torch_tests.test_export_fast_unet
"""

import copy
import importlib
import unittest

from tools.torch_tests import preconditions

torch = preconditions.torch()

TOL = 2e-6  # relative to max |reference|; float32 rounding only


class FastUnetTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        from tools.export import fast_unet, patches, upstream

        upstream.add_dawn_src(preconditions.dawn_src())
        cls.FU, cls.P = fast_unet, patches
        cls.m = importlib.import_module(upstream.UNET_MODULE)
        torch.manual_seed(0)

    def close(self, got, ref, tol=TOL):
        err = float((got - ref).abs().max()) / float(ref.abs().max())
        self.assertLess(err, tol)

    def test_temporal_attention(self):
        from rotary_embedding_torch import RotaryEmbedding

        m = self.m
        rpb = m.RelativePositionBias(heads=8, max_distance=32, window_width=40)
        with torch.no_grad():
            rpb.relative_attention_bias.weight.normal_()
        # (c, h*w): c <= h*w uses per-frame RoPE weights, c > h*w rotates q/k activations
        for c, hw in ((32, 8), (64, 2)):
            res = m.Residual(m.PreNorm(c, m.EinopsToAndFrom(
                "b c f h w", "b (h w) f c",
                m.Attention(c, heads=8, dim_head=32, rotary_emb=RotaryEmbedding(32))))).eval()
            with torch.no_grad():
                res.fn.norm.gamma.uniform_(0.5, 1.5)
            fast = copy.deepcopy(res)
            fast.fn = self.FU.FastTemporalAttention(fast.fn)
            for f in (1, 7, 45):
                x = torch.randn(1, c, f, hw, hw)
                bias = rpb(f, device="cpu")
                with torch.no_grad():
                    self.close(fast(x, pos_bias=bias), res(x, pos_bias=bias))

    def test_cross_attention_sigmoid_form(self):
        m = self.m
        for dim, dout, hw in ((64, 64, 8), (128, 32, 4)):
            blk = m.ResnetBlock_ca_mul(dim, dout, time_emb_dim=256, audio_emb_dim=1024, pose_emb_dim=6,
                                       eye_emb_dim=2, groups=8).eval()
            with torch.no_grad():  # exercise norm gains, q/k scales and the null key/value
                for p in blk.parameters():
                    if p.dim() == 1 or p.shape[0] == 2:
                        p.add_(torch.randn_like(p) * 0.3)
            fast = copy.deepcopy(blk)
            self.assertEqual(self.FU.patch_cross_attention(fast), 1)
            for f in (1, 5):
                x, t, cond = torch.randn(1, dim, f, hw, hw), torch.randn(1, 256), torch.randn(1, f, 1032)
                with torch.no_grad():
                    self.close(fast(x, t, cond), blk(x, t, cond), 5e-6)

    def test_spatial_linear_attention(self):
        m = self.m
        for c, hw in ((64, 8), (128, 4)):
            res = m.Residual(m.PreNorm(c, m.SpatialLinearAttention(c, heads=8))).eval()
            with torch.no_grad():
                res.fn.norm.gamma.uniform_(0.5, 1.5)
            fast = copy.deepcopy(res)
            self.assertEqual(self.FU.patch_spatial_linear_attention(fast), 1)
            x = torch.randn(1, c, 5, hw, hw)
            with torch.no_grad():
                self.close(fast(x), res(x))

    def test_patch_unet_counts(self):
        """patch_unet rewrites every instance of the released architecture (small width here)."""
        unet = self.m.DynamicNfUnet3D(dim=16, cond_dim=1032, cond_aud=1024, cond_pose=6, cond_eye=2,
                                      num_frames=8, channels=3 + 16, use_hubert_audio_cond=True,
                                      win_width=40).eval()
        patched = self.P.patch_unet(copy.deepcopy(unet), 40)
        names = [type(mm).__name__ for mm in patched.modules()]
        self.assertEqual(names.count("FastTemporalAttention"), 10)
        self.assertEqual(names.count("FastCrossAttention3"), 18)
        self.assertEqual(names.count("FastSpatialLinearAttention"), 8)
        # final_conv / occlusion_map blocks have no condition (their cross-attentions are unused)
        self.assertFalse([mm for mm in patched.modules() if type(mm).__name__ == "ResnetBlock_ca_mul"
                          and mm.audio_mlp is not None and hasattr(mm, "cross_attn_aud")])
        x = torch.randn(1, 3 + 16, 3, 16, 16)
        t, cond = torch.tensor([500.0]), torch.randn(1, 3, 1032)
        unet.update_num_frames(3)
        with torch.no_grad():
            ref = unet.forward_with_cond_scale(x, t.long(), cond=cond, cond_scale=1.0)
            st = torch.nn.functional.conv3d(x[:, 3:], unet.init_conv.weight[:, 3:], unet.init_conv.bias,
                                            padding=(0, 3, 3))
            got = patched(torch.cat([x[:, :3], st], 1), t, cond=cond)
        self.close(got, ref, 1e-5)


if __name__ == "__main__":
    unittest.main()
