"""Upstream DAWN's own inference code, run on given inputs with injected noise (needs torch).

The networks are built by the exporter (``tools.export.pipeline.build_networks``): with
``--random-weights`` the same deterministic weights as a pack exported that way, otherwise the
trained checkpoints. The stages are upstream's functions from the user's DAWN-pytorch checkout,
called as ``unified_video_generator.py`` calls them:

- ``VideoGenerator.process_audio``: HuBERT on the 16 kHz clip (its 20 s segment loop) and the
  ``interp1d`` alignment to 25 fps;
- ``VideoGenerator.generate_pose_blink``: PBNet pose and blink (``CAE.generate``) from the init
  state files a face analysis writes;
- ``FlowDiffusion.sample_one_video``: portrait features, face mask and Face_loc_Encoder, the
  condition ``hubert ⊕ (pose − init) ⊕ (eye − init)``, DDIM over all frames, LFG decoding.

Only the glue of ``generate_final_video`` (tensors in, frames out; it also writes PNGs and an MP4)
is restated, as in tools/bench/torch_ref.py. Every ``torch.randn`` / ``torch.randn_like`` that
upstream draws (PBNet's z, the DDIM start and per-step noise; nothing else draws in eval mode) is
answered from a :class:`NoiseFeed` that holds the port's noise in the port's order, so both sides
see the same random numbers. A draw of another shape, or a draw too many or too few, is an error.
"""

import argparse
import contextlib
import io
import os
import shutil
import sys
import types

import numpy as np
import torch

from tools.bench import torch_ref
from tools.export import pipeline as P
from tools.export import upstream as U

from . import inputs as I


class NoiseFeed:
    """Answers upstream's random draws, in order, with given tensors."""

    def __init__(self, draws):
        self.draws = list(draws)  # (what, np.ndarray)
        self.used = 0

    def next(self, shape, call):
        if self.used >= len(self.draws):
            raise RuntimeError(f"upstream drew noise {tuple(shape)} ({call}) after the port's "
                               f"{len(self.draws)} draws were used")
        what, value = self.draws[self.used]
        if tuple(value.shape) != tuple(shape):
            raise RuntimeError(f"upstream drew noise {tuple(shape)} ({call}) where the port draws "
                               f"{what} {tuple(value.shape)}")
        self.used += 1
        return torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32))

    @contextlib.contextmanager
    def installed(self):
        saved = torch.randn, torch.randn_like

        def randn(*size, **kw):
            shape = size[0] if len(size) == 1 and isinstance(size[0], (tuple, list, torch.Size)) else size
            return self.next(tuple(int(s) for s in shape), "torch.randn")

        def randn_like(t, **kw):
            return self.next(tuple(t.shape), "torch.randn_like")

        torch.randn, torch.randn_like = randn, randn_like
        try:
            yield self
        finally:
            torch.randn, torch.randn_like = saved
        if self.used != len(self.draws):
            raise RuntimeError(f"upstream drew {self.used} noise tensors, the port "
                               f"{len(self.draws)}")


class Upstream:
    """The networks, built once, and upstream's module; :meth:`run` does one clip."""

    def __init__(self, dawn_src, resolution, seed, checkpoints=None, hubert=None, threads=None):
        if threads:
            torch.set_num_threads(threads)
        # Upstream moves a few tensors to "cuda" (generate_bbox_mask); on the CPU that is the
        # identity. Nothing else is changed.
        torch.Tensor.cuda = lambda self, *a, **k: self
        torch.nn.Module.cuda = lambda self, *a, **k: self
        args = argparse.Namespace(dawn_src=dawn_src, resolution=resolution, seed=seed,
                                  checkpoints=checkpoints, hubert=hubert, threads=threads)
        self.fd, self.pbnets, self.hubert, self.vcfg, self.uvg, self.info = torch_ref.build(args)
        self.resolution = resolution

    def face_mask(self, bbox_row):
        """Upstream's ``generate_bbox_mask`` for one bbox row [x0, x1, y0, y1, W, H]."""
        bbox = torch.tensor(bbox_row, dtype=torch.float32).reshape(1, 6, 1)
        with torch.no_grad():
            return self.fd.generate_bbox_mask(bbox.clone(), size=self.resolution).numpy()

    def _video_generator(self, work, wav):
        """VideoGenerator's state for process_audio / generate_pose_blink (its __init__ would load
        3DDFA and the checkpoints itself)."""
        uvg = self.uvg
        vg = types.SimpleNamespace()
        vg.audio_path = wav
        vg.cache_path = work
        vg.audio_emb_path = os.path.join(work, "target_audio.npy")
        vg.device = "cpu"
        vg.hubert_model = self.hubert
        vg.wav2vec2_processor = torch_ref.hubert_feature_extractor()
        # The clip is already 16 kHz mono S16: upstream's ffmpeg conversion would copy it.
        vg._convert_wav_to_16k = lambda src, dst: shutil.copyfile(src, dst)
        vg._get_hubert_from_16k_speech = types.MethodType(
            uvg.VideoGenerator._get_hubert_from_16k_speech, vg)
        vg.pose_params = {"pos_dim": 6, "eye_dim": 0}
        vg.blink_params = {"pos_dim": 0, "eye_dim": 2}
        vg.max_vals = torch.tensor([90, 90, 90, 1, 720, 1080]).to(torch.float32).reshape(1, 1, 6)
        vg.min_vals = torch.tensor([-90, -90, -90, 0, 0, 0]).to(torch.float32).reshape(1, 1, 6)
        vg.model_p, vg.model_b = self.pbnets["pose"], self.pbnets["blink"]
        return vg

    def run(self, case, work):
        """One clip. ``case``: an :class:`inputs.Case`. Returns {stage: np.ndarray}."""
        fd, uvg = self.fd, self.uvg
        os.makedirs(work, exist_ok=True)
        wav = os.path.join(work, "speech.wav")
        I.write_wav16(wav, case.audio)
        # The face analysis' files: init_pose.npy [1, 7] (6 used), init_eye_bbox.npy [1, 8].
        np.save(os.path.join(work, "init_pose.npy"),
                np.concatenate([case.init_pose, [0.0]]).reshape(1, 7))
        np.save(os.path.join(work, "init_eye_bbox.npy"),
                np.concatenate([case.init_eye, case.bbox_row]).reshape(1, 8))
        steps = case.steps
        fd.diffusion.sampling_timesteps = steps
        fd.diffusion.is_ddim_sampling = steps < fd.diffusion.num_timesteps
        fd.diffusion.ddim_sampling_eta = case.eta
        got = {"eps": []}
        captures = []

        def capture(obj, name, key):
            fn = getattr(obj, name)

            def wrapped(*a, **k):
                out = fn(*a, **k)
                if key == "eps":
                    got["eps"].append(out.detach().numpy().copy())
                elif key == "pbnet":
                    got.setdefault("pbnet", []).append(out["output"].detach().numpy().copy())
                elif key == "sample":
                    got["cond"] = k["cond"].detach().numpy().copy()
                    got["latents"] = out.detach().numpy().copy()
                return out
            setattr(obj, name, wrapped)
            captures.append((obj, name))

        capture(fd.unet, "forward_with_cond_scale", "eps")
        capture(self.pbnets["pose"], "generate", "pbnet")
        capture(self.pbnets["blink"], "generate", "pbnet")
        capture(fd.diffusion, "sample", "sample")
        cwd = os.getcwd()
        os.chdir(work)  # process_audio writes its temporary WAV into './'
        vg = self._video_generator(work, wav)
        try:
            with torch.inference_mode(), NoiseFeed(case.upstream_draws()).installed():
                with contextlib.redirect_stdout(sys.stderr):
                    uvg.VideoGenerator.process_audio(vg)
                with contextlib.redirect_stdout(io.StringIO()):  # PBNet prints 'eval!'
                    uvg.VideoGenerator.generate_pose_blink(vg)
                out = self._final_video(case, work)
        finally:
            os.chdir(cwd)
            for obj, name in captures:
                delattr(obj, name)
        got["audio_features"] = np.load(vg.audio_emb_path)
        span = (vg.max_vals - vg.min_vals).numpy().reshape(6)
        got["pbnet_pose_delta"] = got["pbnet"][0][0] * span.astype(np.float32)
        got["pbnet_blink_delta"] = got["pbnet"][1][0]
        del got["pbnet"]
        got["frames"] = out
        return got

    def _final_video(self, case, work):
        """``generate_final_video`` up to the frames, without its PNG/MP4 writing."""
        fd, vcfg = self.fd, self.vcfg
        hubert_npy = np.load(os.path.join(work, "target_audio.npy"))
        max_frames = min(vcfg["max_n_frames"], hubert_npy.shape[0])
        ref_hubert = torch.from_numpy(hubert_npy[:max_frames]).to(torch.float32)
        drive_poses = torch.from_numpy(np.load(os.path.join(work, "dri_pose.npy"))[:max_frames]).to(torch.float32)
        drive_blink = torch.from_numpy(np.load(os.path.join(work, "dri_blink.npy"))[:max_frames]).to(torch.float32)
        real_poses = torch.from_numpy(np.load(os.path.join(work, "init_pose.npy"))).to(torch.float32)
        real_blink_bbox = torch.from_numpy(np.load(os.path.join(work, "init_eye_bbox.npy"))).to(torch.float32)
        init_pose = real_poses[0].unsqueeze(0)
        init_blink = real_blink_bbox[0, :2].unsqueeze(0)
        drive_poses = drive_poses.permute(1, 0)
        drive_blink = drive_blink.permute(1, 0)
        real_blink_bbox = real_blink_bbox.permute(1, 0)
        fd.update_num_frames(max_frames)
        with contextlib.redirect_stdout(sys.stderr):  # 'DDIM time ...'
            out = fd.sample_one_video(
                sample_img=torch.from_numpy(case.src_img), sample_audio_hubert=ref_hubert.unsqueeze(0),
                sample_pose=drive_poses.unsqueeze(0), sample_eye=drive_blink[:2].unsqueeze(0),
                sample_bbox=real_blink_bbox[2:].unsqueeze(0), init_pose=init_pose,
                init_eye=init_blink, cond_scale=vcfg["cond_scale"])
        return out["sample_out_vid"][0].permute(1, 0, 2, 3).numpy().copy()  # [N, 3, S, S]
