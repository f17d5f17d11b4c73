#!/usr/bin/env python3
"""Writes the golden cases that the Rust engine is compared against (tests/golden/<case>/).

    .venv/bin/python -m tools.reference.make_golden            # every case
    .venv/bin/python -m tools.reference.make_golden --case tiny64_chunked --out-dir DIR

Inputs come from a real recording and photo in tests/data and a seeded numpy generator; outputs
come from dawn_ref (the independent Python reference). Running the command twice on the same
machine gives byte-identical files (tools/tests/test_reference.py checks it). See
tests/golden/README.md for the file formats.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import struct
import sys
import time
import wave
import zlib
from dataclasses import dataclass

import numpy as np

from . import dawn_ref as ref

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SPEECH = os.path.join(REPO, "tests", "data", "speech_orig_16k.wav")
PORTRAIT = os.path.join(REPO, "tests", "data", "skimage_astronaut_128.png")
F32 = np.float32


@dataclass(frozen=True)
class Case:
    name: str
    pack: str  # relative to the repository root
    params: ref.StreamParams
    steps: int
    eta: float
    n_samples: int  # n mod 640 chosen per case: it decides how the frames meet HuBERT's rows
    planned_samples: int | None  # length announced before the first chunk (None: live)
    audio_offset: int  # first sample taken from the recording
    noise_seed: int
    face_box: tuple[int, int, int, int]  # rows [r0, r1), cols [c0, c1) set to 1
    init_pose: tuple[float, ...]
    init_eye: tuple[float, float]


# DAWN's own fallback pose/eyes (manifest "defaults"), with a non-zero yaw so the min-max
# normalisation of every component is exercised.
_POSE = (5.0, -3.0, 2.0, 4.79e-4, 56.5, 64.9)
_EYE = (0.3, 0.28)

# n mod 640 decides DAWN's alignment (docs/streaming.md, "Audio features"): Th - 1 = 2N - 2 for
# r < 80 (frame k on row 2k), 2N - 1 for 80 <= r < 400, 2N for r >= 400.
CASES = {
    # A file (length announced) in several chunks with context, look-ahead, truncated audio and
    # PBNet windows and a last chunk of 7 new frames without look-ahead (31 = 3 * 8 + 7);
    # r = 317: the clip alignment stretched by one row.
    "tiny64_chunked": Case(
        name="tiny64_chunked", pack="tests/models/tiny64",
        params=ref.StreamParams(C=8, L=4, R=3, Al=6, Ar=2, Lp=10),
        steps=10, eta=1.0, n_samples=31 * 640 + 317, planned_samples=31 * 640 + 317,
        audio_offset=0, noise_seed=20240601,
        face_box=(12, 52, 14, 50), init_pose=_POSE, init_eye=_EYE),
    # No diffusion context (L = 0), deterministic DDIM (eta = 0), no audio right context (so the
    # clip alignment reads past the window's last row and clamps) and a last chunk of 2 frames
    # (12 = 2 * 5 + 2); r = 517: stretched by two rows.
    "tiny64_eta0_steps5": Case(
        name="tiny64_eta0_steps5", pack="tests/models/tiny64",
        params=ref.StreamParams(C=5, L=0, R=2, Al=3, Ar=0, Lp=3),
        steps=5, eta=0.0, n_samples=12 * 640 + 517, planned_samples=12 * 640 + 517,
        audio_offset=8000, noise_seed=7,
        face_box=(12, 52, 14, 50), init_pose=_POSE, init_eye=_EYE),
    # The whole file in one chunk (upstream's one pass); r = 41: frame k on row 2k.
    "tiny64_onepass": Case(
        name="tiny64_onepass", pack="tests/models/tiny64",
        params=ref.StreamParams(C=32, L=20, R=10, Al=50, Ar=13, Lp=100),
        steps=3, eta=1.0, n_samples=12 * 640 + 41, planned_samples=12 * 640 + 41,
        audio_offset=16000, noise_seed=11,
        face_box=(10, 50, 12, 52), init_pose=_POSE, init_eye=_EYE),
    # A live stream (no length announced): two rows per frame in every chunk although r = 250.
    "tiny64_live": Case(
        name="tiny64_live", pack="tests/models/tiny64",
        params=ref.StreamParams(C=6, L=4, R=2, Al=5, Ar=3, Lp=8),
        steps=3, eta=1.0, n_samples=14 * 640 + 250, planned_samples=None,
        audio_offset=24000, noise_seed=12,
        face_box=(12, 52, 14, 50), init_pose=_POSE, init_eye=_EYE),
    # EOS 10 frames before the announced length: the complete windows follow the announced
    # length, the chunk that EOS cut follows the real one (r = 450).
    "tiny64_early_eos": Case(
        name="tiny64_early_eos", pack="tests/models/tiny64",
        params=ref.StreamParams(C=5, L=3, R=2, Al=4, Ar=2, Lp=6),
        steps=3, eta=1.0, n_samples=16 * 640 + 450, planned_samples=26 * 640 + 120,
        audio_offset=32000, noise_seed=13,
        face_box=(12, 52, 14, 50), init_pose=_POSE, init_eye=_EYE),
}

NOISE_SLACK = 1024  # extra values after the last one consumed, so over-reading is detectable
                    # by the count in case.json rather than by running out


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------


def read_speech(path: str, offset: int, n: int) -> np.ndarray:
    """Mono S16 wav -> f32 in [-1, 1) (S16 / 32768, the element's conversion)."""
    with wave.open(path, "rb") as w:
        if (w.getnchannels(), w.getsampwidth(), w.getframerate()) != (1, 2, 16000):
            raise ValueError(f"{path}: expected mono S16 16 kHz")
        w.setpos(offset)
        raw = w.readframes(n)
    x = np.frombuffer(raw, dtype="<i2")
    if x.size != n:
        raise ValueError(f"{path}: only {x.size} samples after offset {offset}, need {n}")
    return (x.astype(np.float64) / 32768.0).astype(F32)


def read_png_rgb8(path: str) -> np.ndarray:
    """Minimal PNG reader (8-bit RGB, non-interlaced) so that no imaging library is needed.

    Returns uint8 [H, W, 3].
    """
    with open(path, "rb") as fh:
        data = fh.read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path}: not a PNG")
    pos, idat, header = 8, b"", None
    while pos < len(data):
        (length,), ctype = struct.unpack(">I", data[pos:pos + 4]), data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        if ctype == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif ctype == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, color, _, _, interlace = header
    if (depth, color, interlace) != (8, 2, 0):
        raise ValueError(f"{path}: only 8-bit RGB non-interlaced PNGs are supported")
    raw = np.frombuffer(zlib.decompress(idat), dtype=np.uint8).reshape(height, 1 + 3 * width)
    return _unfilter(raw, bpp=3).reshape(height, width, 3)


def _unfilter(raw: np.ndarray, bpp: int) -> np.ndarray:
    """Undoes the per-row PNG filters (None, Sub, Up, Average, Paeth)."""
    height, stride = raw.shape[0], raw.shape[1] - 1
    out = np.zeros((height, stride), dtype=np.int32)
    prev = np.zeros(stride, dtype=np.int32)
    for y in range(height):
        kind, row = raw[y, 0], raw[y, 1:].astype(np.int32)
        cur = np.zeros(stride, dtype=np.int32)
        if kind in (0, 2):  # None, Up: no dependence on the current row
            cur = (row + (prev if kind == 2 else 0)) & 0xFF
        else:
            for i in range(stride):
                left = cur[i - bpp] if i >= bpp else 0
                upleft = prev[i - bpp] if i >= bpp else 0
                if kind == 1:
                    pred = left
                elif kind == 3:
                    pred = (left + prev[i]) // 2
                elif kind == 4:
                    p = left + prev[i] - upleft
                    pa, pb, pc = abs(p - left), abs(p - prev[i]), abs(p - upleft)
                    pred = left if pa <= pb and pa <= pc else (prev[i] if pb <= pc else upleft)
                else:
                    raise ValueError(f"bad PNG filter {kind}")
                cur[i] = (row[i] + pred) & 0xFF
        out[y] = cur
        prev = cur
    return out.astype(np.uint8)


def portrait_tensor(path: str, size: int) -> np.ndarray:
    """RGB portrait -> [1, 3, size, size] in [0, 1], downscaled by an integer box filter."""
    img = read_png_rgb8(path).astype(np.float64) / 255.0
    f = img.shape[0] // size
    if img.shape[0] != img.shape[1] or img.shape[0] != f * size:
        raise ValueError(f"{path}: {img.shape[:2]} is not an integer multiple of {size}")
    small = img.reshape(size, f, size, f, 3).mean(axis=(1, 3))
    return small.transpose(2, 0, 1)[None].astype(F32)


def face_mask_tensor(size: int, box) -> np.ndarray:
    r0, r1, c0, c1 = box
    m = np.zeros((1, 1, size, size), dtype=F32)
    m[0, 0, r0:r1, c0:c1] = 1.0
    return m


# --------------------------------------------------------------------------------------------
# One case
# --------------------------------------------------------------------------------------------


def write_f32(path: str, a: np.ndarray) -> None:
    np.ascontiguousarray(a, dtype="<f4").tofile(path)


def pack_fingerprint(pack_dir: str) -> dict[str, str]:
    """sha256 of the manifest and every graph, so a stale golden is recognisable at a glance."""
    with open(os.path.join(pack_dir, "manifest.json")) as fh:
        names = ["manifest.json"] + sorted(json.load(fh)["graphs"].values())
    out = {}
    for name in names:
        with open(os.path.join(pack_dir, name), "rb") as fh:
            out[name] = "sha256:" + hashlib.sha256(fh.read()).hexdigest()
    return out


def make_case(case: Case, out_root: str) -> dict:
    t_start = time.perf_counter()
    pack = ref.Pack(os.path.join(REPO, case.pack))
    S, s = pack.resolution, pack.latent_size
    d = pack.diffusion

    plans = ref.plan_chunks(case.params, case.n_samples)
    per_chunk = ref.clip_noise_count(plans, case.steps, case.eta, s, pack.noise_dim,
                                     int(d["train_timesteps"]))
    expected_noise = sum(per_chunk)

    audio = read_speech(SPEECH, case.audio_offset, case.n_samples)
    noise = np.random.default_rng(case.noise_seed).standard_normal(
        expected_noise + NOISE_SLACK, dtype=F32)
    src_img = portrait_tensor(PORTRAIT, S)
    face_mask = face_mask_tensor(S, case.face_box)

    reader = ref.NoiseReader(noise)
    frames, latents, results = ref.generate_clip(
        pack, case.params, audio, reader, src_img, face_mask, case.init_pose, case.init_eye,
        steps=case.steps, eta=case.eta, planned_samples=case.planned_samples)

    n_frames = ref.frame_count(case.n_samples)
    # The run must agree with the plan-only count: a cross-check of both code paths.
    assert frames.shape == (n_frames, 3, S, S), frames.shape
    assert latents.shape == (n_frames, 3, s, s), latents.shape
    assert [r.noise_used for r in results] == per_chunk, ([r.noise_used for r in results],
                                                          per_chunk)
    assert reader.consumed == expected_noise

    out = os.path.join(out_root, case.name)
    os.makedirs(out, exist_ok=True)
    files = {
        "audio": ("audio.f32", audio, [case.n_samples]),
        "noise": ("noise.f32", noise, [int(noise.size)]),
        "src_img": ("src_img.f32", src_img, [1, 3, S, S]),
        "face_mask": ("face_mask.f32", face_mask, [1, 1, S, S]),
        "frames": ("frames.f32", frames, [n_frames, 3, S, S]),
        "latents": ("latents.f32", latents, [n_frames, 3, s, s]),
    }
    for name, arr, shape in files.values():
        assert list(arr.shape) == shape, (name, arr.shape, shape)
        write_f32(os.path.join(out, name), arr)

    p = case.params
    meta = {
        "case": case.name,
        "generator": "tools/reference/make_golden.py (independent Python reference, dawn_ref.py)",
        "pack": case.pack,
        "pack_sha256": pack_fingerprint(os.path.join(REPO, case.pack)),
        "resolution": S,
        "latent_size": s,
        "C": p.C, "L": p.L, "R": p.R, "Al": p.Al, "Ar": p.Ar, "Lp": p.Lp,
        "sampling_steps": case.steps,
        "eta": case.eta,
        "threshold_quantile": float(d["threshold_quantile"]),
        "init_pose": list(case.init_pose),
        "init_eye": list(case.init_eye),
        "n_samples": case.n_samples,
        "planned_samples": case.planned_samples,
        "n_frames": n_frames,
        "noise_seed": case.noise_seed,
        "noise_values": int(noise.size),
        "noise_consumed": int(reader.consumed),
        "audio_source": f"{os.path.basename(SPEECH)} samples "
                        f"[{case.audio_offset}, {case.audio_offset + case.n_samples}), S16/32768",
        "portrait_source": f"{os.path.basename(PORTRAIT)}, {S}x{S} box-filtered, RGB in [0, 1]",
        "face_box_rows_cols": list(case.face_box),
        "tolerance": 1e-4,
        "files": {k: {"file": v[0], "dtype": "float32-le", "shape": v[2]}
                  for k, v in files.items()},
        "chunks": [dict(pl.as_dict(), noise_values=n,
                        alignment_samples=ref.chunk_alignment(pl, case.params,
                                                              case.planned_samples))
                   for pl, n in zip(plans, per_chunk)],
    }
    with open(os.path.join(out, "case.json"), "w") as fh:
        json.dump(meta, fh, indent=2)
        fh.write("\n")
    meta["_seconds"] = time.perf_counter() - t_start
    return meta


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", action="append", choices=sorted(CASES),
                    help="case to write (repeatable; default: all)")
    ap.add_argument("--out-dir", default=os.path.join(REPO, "tests", "golden"),
                    help="parent directory of the case folders (default: tests/golden)")
    args = ap.parse_args(argv)
    for name in args.case or list(CASES):
        meta = make_case(CASES[name], args.out_dir)
        print(f"{name}: {meta['n_frames']} frames, {len(meta['chunks'])} chunks, "
              f"noise {meta['noise_consumed']} of {meta['noise_values']} values, "
              f"{meta['_seconds']:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
