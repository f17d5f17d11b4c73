"""The PyTorch side of ``tools/bench/side_by_side.py``: one pass of DAWN's upstream inference
(``unified_video_generator.py``, CPU) on a portrait and a speech clip, timed per stage, in a
process of its own so that its peak memory is its own.

Run by the driver as ``python -m tools.bench.torch_ref ...`` from the repository root with the
exporter's virtual environment (torch, transformers, scipy, pyyaml; onnxruntime for ``check``).
Nothing from upstream is copied into gst-dawn:

- the networks are built by ``tools.export`` (``pipeline.build_networks``): the same construction
  and, with ``--random-weights``, the same deterministic random weights as an exported pack
  (``check`` proves it against the pack's ONNX graphs);
- the stages call upstream's own code from ``--dawn-src``: ``VideoGenerator.process_audio``
  (HuBERT, segment loop, linear interpolation to 25 fps), ``VideoGenerator.generate_pose_blink``
  (PBNet pose + blink), ``FlowDiffusion.sample_one_video`` (portrait encoding, DDIM over all
  frames with the dense band-masked U-Net, LFG decoding frame by frame). Only the glue of
  ``VideoGenerator.generate_final_video`` (building its input tensors, the uint8 conversion of
  each frame) is restated here, because that method also writes PNGs and an MP4 with OpenCV.

Two modes:

``run``    the timed inference; prints ``TORCH_SUMMARY {json}`` as its last line.
``check``  builds the same networks and compares them with a pack's ONNX graphs using the
           exporter's own verifier (prints ``TORCH_CHECK {json}``).
"""

import argparse
import contextlib
import io
import json
import os
import platform
import sys
import tempfile
import time
import types


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m tools.bench.torch_ref")
    p.add_argument("mode", choices=("run", "check"))
    p.add_argument("--dawn-src", required=True)
    p.add_argument("--resolution", type=int, required=True, choices=(128, 256))
    p.add_argument("--seed", type=int, default=0, help="weights seed of the pack (provenance.exporter.seed)")
    p.add_argument("--checkpoints", help="trained weights instead of random ones (see tools.export)")
    p.add_argument("--hubert", help="local facebook/hubert-large-ls960-ft (with --checkpoints)")
    p.add_argument("--audio", help="speech WAV (run)")
    p.add_argument("--image", help="portrait (run)")
    p.add_argument("--steps", type=int, default=20, help="DDIM steps (run)")
    p.add_argument("--max-frames", type=int, default=None,
                   help="frames of the single diffusion pass (default: config max_n_frames, 200)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--noise-seed", type=int, default=1234, help="torch seed before inference")
    p.add_argument("--workdir", help="folder for upstream's cache files (default: a temp dir)")
    p.add_argument("--pack", help="pack to compare with (check)")
    return p.parse_args(argv)


# ------------------------------------------------------------------------------------ memory

def proc_status_kib(field, pid="self"):
    """A ``/proc/<pid>/status`` field in KiB (VmHWM, VmRSS), or None."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def reset_peak_rss():
    """Resets VmHWM to the current RSS (Linux >= 4.0: ``echo 5 > /proc/self/clear_refs``)."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
        return True
    except OSError:
        return False


def mib(kib):
    return None if kib is None else round(kib / 1024.0, 1)


# ------------------------------------------------------------------------------------- setup

def _read_wav(path):
    """Stand-in for ``soundfile.read`` (upstream's reader; not installed here): 16-bit PCM WAV ->
    float64 in [-1, 1), 2-D for several channels, like soundfile."""
    import wave

    import numpy as np

    with wave.open(path, "rb") as w:
        n, ch, width, rate = w.getnframes(), w.getnchannels(), w.getsampwidth(), w.getframerate()
        raw = w.readframes(n)
    if width != 2:
        raise SystemExit(f"{path}: {8 * width}-bit samples; only 16-bit PCM is read here")
    x = np.frombuffer(raw, "<i2").astype(np.float64) / 32768.0
    return (x.reshape(-1, ch) if ch > 1 else x), rate


def import_upstream(U):
    """``unified_video_generator`` from --dawn-src. Its 3DDFA/FaceBoxes imports need a compiled
    NMS extension that is not built here; face detection is not part of the benchmark (both
    sides use the no-face defaults), so that package is stubbed while importing."""
    finder = U._StubFinder(["extract_init_states"])
    sys.meta_path.insert(0, finder)
    try:
        with U.stubs_for_missing():
            import unified_video_generator as uvg
    finally:
        sys.meta_path.remove(finder)
        for k in [k for k in sys.modules if k.split(".")[0] == "extract_init_states"]:
            del sys.modules[k]
    uvg.sf = types.SimpleNamespace(read=_read_wav)
    return uvg


def build(args):
    """(fd, pbnets, hubert, vcfg, uvg, info) built by the exporter, plus upstream's module."""
    import torch

    from tools.export import pipeline as P
    from tools.export import upstream as U

    ns = argparse.Namespace(dawn_src=args.dawn_src, resolution=args.resolution, seed=args.seed,
                            random_weights=not args.checkpoints, checkpoints=args.checkpoints,
                            hubert=args.hubert)
    with contextlib.redirect_stdout(sys.stderr):
        fd, pbnets, hubert, _files = P.build_networks(ns)
    import yaml

    with open(os.path.join(args.dawn_src, "config", f"DAWN_{args.resolution}.yaml"), encoding="utf-8") as f:
        vcfg = yaml.safe_load(f)
    uvg = import_upstream(U)
    info = {"weights": "random" if ns.random_weights else "trained", "weights_seed": args.seed,
            "face_loc_sha256": P.face_loc_digest(fd.face_loc_emb),
            "parameters": {"flow_diffusion": sum(p.numel() for p in fd.parameters()),
                           "pbnet": sum(p.numel() for m in pbnets.values() for p in m.parameters()),
                           "hubert": sum(p.numel() for p in hubert.parameters())},
            "upstream_stubs": list(U.stubbed) + ["extract_init_states"]}
    del torch
    return fd, pbnets, hubert, vcfg, uvg, info


def hubert_feature_extractor():
    """The feature extractor of facebook/hubert-large-ls960-ft (preprocessor_config.json:
    16 kHz, zero-mean unit-variance normalisation, no attention mask) - what upstream's
    ``AutoProcessor`` call returns ``input_values`` from."""
    from transformers import Wav2Vec2FeatureExtractor

    return Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.0,
                                    do_normalize=True, return_attention_mask=False)


# --------------------------------------------------------------------------------------- run

class Marks:
    """Wraps callables to record their wall time (perf_counter)."""

    def __init__(self):
        self.spans = {}

    def wrap(self, name, fn):
        spans = self.spans.setdefault(name, [])

        def timed(*a, **k):
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                spans.append((t0, time.perf_counter()))
        return timed

    def total(self, name):
        return sum(b - a for a, b in self.spans.get(name, []))

    def count(self, name):
        return len(self.spans.get(name, []))


def load_portrait(path, size):
    """generate_final_video's ``Resize((S, S))`` (PIL bilinear on a PIL image: stretched, not
    cropped) + ``ToTensor`` (-> [0, 1]); its ``* 255`` and later ``/ 255`` cancel out."""
    import numpy as np
    import torch
    from PIL import Image

    img = Image.open(path).convert("RGB").resize((size, size), Image.BILINEAR)
    x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1)
    return x.unsqueeze(0).contiguous()


def to_uint8_bgr(frame, mean):
    """``VideoGenerator._process_output_frame`` without OpenCV: HWC, + mean, clip, x255, uint8
    (truncation), RGB -> BGR."""
    import numpy as np

    f = frame[0].permute(1, 2, 0).cpu().numpy().copy()
    f += np.array(mean) / 255.0
    f = np.clip(f, 0, 1)
    return np.ascontiguousarray((f * 255).astype(np.uint8)[..., ::-1])


def run(args):
    t_proc = time.perf_counter()
    args.audio, args.image = os.path.abspath(args.audio), os.path.abspath(args.image)
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    # Upstream moves tensors to "cuda" in a few places (generate_bbox_mask); on this CPU
    # benchmark .cuda() is the identity. Nothing else is changed.
    torch.Tensor.cuda = lambda self, *a, **k: self
    torch.nn.Module.cuda = lambda self, *a, **k: self

    fd, pbnets, hubert, vcfg, uvg, info = build(args)
    S = args.resolution
    max_n_frames = args.max_frames or vcfg["max_n_frames"]
    if args.steps != vcfg["sampling_step"]:
        fd.diffusion.sampling_timesteps = args.steps
        fd.diffusion.is_ddim_sampling = args.steps < fd.diffusion.num_timesteps
    setup_s = time.perf_counter() - t_proc
    rss_setup = proc_status_kib("VmRSS")
    hwm_setup = proc_status_kib("VmHWM")

    work = args.workdir or tempfile.mkdtemp(prefix="dawn-torch-bench-")
    os.makedirs(work, exist_ok=True)
    os.chdir(work)  # process_audio writes its temporary 16 kHz WAV into './'
    marks = Marks()

    # VideoGenerator's state, with the networks built above (its __init__ would also load the
    # 3DDFA models and the checkpoints from ./pretrain_models).
    vg = types.SimpleNamespace()
    vg.audio_path = args.audio
    vg.cache_path = work
    vg.audio_emb_path = os.path.join(work, "target_audio.npy")
    vg.device = "cpu"
    vg.hubert_model = hubert
    vg.wav2vec2_processor = hubert_feature_extractor()
    vg._convert_wav_to_16k = uvg.VideoGenerator._convert_wav_to_16k
    vg._get_hubert_from_16k_speech = marks.wrap(
        "hubert", types.MethodType(uvg.VideoGenerator._get_hubert_from_16k_speech, vg))
    vg.pose_params = {"pos_dim": 6, "eye_dim": 0}
    vg.blink_params = {"pos_dim": 0, "eye_dim": 2}
    vg.max_vals = torch.tensor([90, 90, 90, 1, 720, 1080]).to(torch.float32).reshape(1, 1, 6)
    vg.min_vals = torch.tensor([-90, -90, -90, 0, 0, 0]).to(torch.float32).reshape(1, 1, 6)
    vg.model_p, vg.model_b = pbnets["pose"], pbnets["blink"]

    fd.diffusion.sample = marks.wrap("diffusion", fd.diffusion.sample)
    fd.unet.forward_with_cond_scale = marks.wrap("unet", fd.unet.forward_with_cond_scale)
    fd.generator.forward_with_flow = marks.wrap("decoder_call", fd.generator.forward_with_flow)
    img = load_portrait(args.image, vcfg["input_size"])

    hwm_reset = reset_peak_rss()
    torch.manual_seed(args.noise_seed)
    stages = {}
    t_inf = time.perf_counter()
    with torch.inference_mode():
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(sys.stderr):
            uvg.VideoGenerator.process_audio(vg)           # ffmpeg -> 16 kHz, HuBERT, interp1d
        stages["audio"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):  # PBNet prints 'eval!' on every call
            uvg.VideoGenerator.generate_pose_blink(vg)     # no init files: upstream's defaults
        stages["pbnet"] = time.perf_counter() - t0

        # generate_final_video, without its PNG/MP4 writing.
        t0 = time.perf_counter()
        hubert_npy = np.load(vg.audio_emb_path)
        max_frames = min(max_n_frames, hubert_npy.shape[0])
        ref_hubert = torch.from_numpy(hubert_npy[:max_frames]).to(torch.float32)
        drive_poses = torch.from_numpy(np.load(os.path.join(work, "dri_pose.npy"))[:max_frames]).to(torch.float32)
        drive_blink = torch.from_numpy(np.load(os.path.join(work, "dri_blink.npy"))[:max_frames]).to(torch.float32)
        real_poses = torch.zeros(1, 7)  # generate_final_video's defaults when 3DDFA found no face
        real_blink_bbox = torch.tensor([[0.3, 0.3, 64, 64, 192, 192, 256, 256]]).reshape(1, -1).to(torch.float32)
        init_pose = real_poses[0].unsqueeze(0)
        init_blink = real_blink_bbox[0, :2].unsqueeze(0)
        drive_poses = drive_poses.permute(1, 0)
        drive_blink = drive_blink.permute(1, 0)
        real_blink_bbox = real_blink_bbox.permute(1, 0)
        fd.update_num_frames(max_frames)
        with contextlib.redirect_stdout(sys.stderr):     # 'DDIM time ...'
            out = fd.sample_one_video(
                sample_img=img, sample_audio_hubert=ref_hubert.unsqueeze(0),
                sample_pose=drive_poses.unsqueeze(0), sample_eye=drive_blink[:2].unsqueeze(0),
                sample_bbox=real_blink_bbox[2:].unsqueeze(0), init_pose=init_pose,
                init_eye=init_blink, cond_scale=vcfg["cond_scale"])
        t1 = time.perf_counter()
        (d0, d1), = marks.spans["diffusion"]
        stages["portrait"] = d0 - t0        # input tensors, compute_fea, face mask + Face_loc_Encoder
        stages["diffusion"] = d1 - d0       # DDIM: U-Net calls + sampler arithmetic
        stages["decoder"] = t1 - d1         # forward_with_flow per frame (re-encodes the portrait)

        t0 = time.perf_counter()
        frames = [to_uint8_bgr(out["sample_out_vid"][:, :, i], vcfg["mean"]) for i in range(max_frames)]
        stages["output"] = time.perf_counter() - t0
    inference_s = time.perf_counter() - t_inf
    hwm_inf = proc_status_kib("VmHWM")
    checksum = float(np.mean([f.mean() for f in frames])) if frames else 0.0

    summary = {
        "frames": max_frames,
        "audio_frames": int(hubert_npy.shape[0]),
        "steps": args.steps,
        "unet_calls": marks.count("unet"),
        "unet_s_per_call": round(marks.total("unet") / max(1, marks.count("unet")), 4),
        "decoder_calls": marks.count("decoder_call"),
        "resolution": S,
        "threads": torch.get_num_threads(),
        "stages_s": {k: round(v, 4) for k, v in stages.items()},
        "hubert_s": round(marks.total("hubert"), 4),
        "unet_s": round(marks.total("unet"), 4),
        "inference_s": round(inference_s, 3),
        "setup_s": round(setup_s, 3),
        "rss_after_setup_mib": mib(rss_setup),
        "peak_rss_setup_mib": mib(hwm_setup),
        "peak_rss_inference_mib": mib(hwm_inf) if hwm_reset else None,
        "peak_rss_mib": mib(max(hwm_setup or 0, hwm_inf or 0)),
        "peak_reset_worked": hwm_reset,
        "frame_mean": round(checksum, 3),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "dawn_config": {"win_width": vcfg["win_width"], "ddim_sampling_eta": vcfg["ddim_sampling_eta"],
                        "cond_scale": vcfg["cond_scale"], "max_n_frames": max_n_frames},
        **info,
    }
    print("TORCH_SUMMARY " + json.dumps(summary), flush=True)
    return 0


# ------------------------------------------------------------------------------------- check

def check(args):
    """Same networks vs the pack's graphs, with the exporter's verifier (small inputs)."""
    import torch

    from tools.export import graphs as G
    from tools.export import pipeline as P

    torch.set_num_threads(args.threads)
    fd, pbnets, hubert, vcfg, uvg, info = build(args)
    refs = G.References(fd, pbnets, hubert)
    v = P.Verifier(args.pack, refs, args.resolution, args.threads, 1e-3, args.seed)
    sizes = {"portrait_encoder": [None], "denoiser": [2], "decoder": [1],
             "pbnet_pose": [7], "pbnet_blink": [7], "audio_encoder": [720]}
    with contextlib.redirect_stdout(sys.stderr):
        for role in ("portrait_encoder", "denoiser", "decoder", "pbnet_pose", "pbnet_blink", "audio_encoder"):
            v.check(role, sizes[role])
            if role != "portrait_encoder":
                v.drop(role)
    rows = [{k: r[k] for k in ("graph", "inputs", "rel_err", "pass")} for r in v.rows]
    result = {"all_pass": all(r["pass"] for r in rows), "bound": 1e-3, "rows": rows,
              "face_loc_sha256": info["face_loc_sha256"]}
    print("TORCH_CHECK " + json.dumps(result), flush=True)
    return 0 if result["all_pass"] else 1


def main(argv=None):
    args = parse_args(argv)
    if args.mode == "run":
        if not args.audio or not args.image:
            raise SystemExit("run needs --audio and --image")
        return run(args)
    if not args.pack:
        raise SystemExit("check needs --pack")
    return check(args)


if __name__ == "__main__":
    sys.exit(main())
