#!/usr/bin/env python3
"""Peak memory and time of one ONNX graph of a model pack in ONNX Runtime (CPU), with the
session settings the engine uses, for choosing chunk sizes and session options.

    .venv/bin/python tools/bench/memprobe.py PACK/denoiser.onnx FRAMES [--no-pattern] [--no-arena] [--runs 2]

Every dynamic axis is set to FRAMES (for the decoder that is its batch of frames); inputs are
random. Prints the resident and peak memory (VmRSS / VmHWM) after each run: the peak of the
whole process, i.e. what this graph alone costs at that size.
"""

import argparse
import time

import numpy as np
import onnxruntime as ort


def status_mib(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) // 1024
    return -1


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("graph")
    p.add_argument("frames", type=int)
    p.add_argument("--no-pattern", action="store_true", help="disable the memory pattern (the engine does)")
    p.add_argument("--no-arena", action="store_true", help="disable the CPU arena")
    p.add_argument("--runs", type=int, default=2)
    a = p.parse_args()
    so = ort.SessionOptions()
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.enable_mem_pattern = not a.no_pattern
    so.enable_cpu_mem_arena = not a.no_arena
    s = ort.InferenceSession(a.graph, so, providers=["CPUExecutionProvider"])
    print(f"loaded: rss {status_mib('VmRSS')} MiB")
    rng = np.random.default_rng(0)
    feeds = {}
    for i in s.get_inputs():
        shape = [d if isinstance(d, int) else a.frames for d in i.shape]
        if "float" in i.type:
            feeds[i.name] = rng.random(shape, dtype=np.float32)
        else:
            feeds[i.name] = np.zeros(shape, np.int64)
        if i.name == "timestep":
            feeds[i.name][:] = 500
        print(f"  {i.name} {shape}")
    for r in range(a.runs):
        t = time.perf_counter()
        s.run(None, feeds)
        print(f"run {r}: {time.perf_counter() - t:.1f} s, rss {status_mib('VmRSS')} MiB, "
              f"peak {status_mib('VmHWM')} MiB")


if __name__ == "__main__":
    main()
