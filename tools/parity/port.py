"""The port's side: the Rust engine through examples/parity.rs (torch-free)."""

import glob
import os
import subprocess

from . import inputs as I

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_ENGINE = os.path.join(ROOT, "target", "release", "examples", "parity")


class PortError(Exception):
    """The engine could not run; the message says why and what to do."""


def ort_library():
    """ORT_DYLIB_PATH, else the library tools/setup.sh put into .ort/."""
    env = os.environ.get("ORT_DYLIB_PATH")
    if env:
        return env
    found = sorted(glob.glob(os.path.join(ROOT, ".ort", "onnxruntime", "capi", "libonnxruntime.so.*")))
    if not found:
        raise PortError("no ONNX Runtime library: set ORT_DYLIB_PATH or run tools/setup.sh")
    return found[-1]


def check_engine(path):
    if not os.path.isfile(path) or not os.access(path, os.X_OK):
        raise PortError(f"{path}: the engine example is missing; build it with "
                        f"`cargo build --release --example parity` (or pass --engine PATH)")


def run(engine, pack, case, folder, threads=0, timeout=3600):
    """Runs one clip through the engine; returns read_engine_dump's (tensors, index)."""
    check_engine(engine)
    inputs, out = os.path.join(folder, "inputs"), os.path.join(folder, "port")
    I.write_engine_inputs(case, inputs)
    env = dict(os.environ, ORT_DYLIB_PATH=ort_library())
    cmd = [engine, "--model", pack, "--inputs", inputs, "--out", out, "--threads", str(threads)]
    try:
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise PortError(f"the engine did not finish within {timeout} s: {' '.join(cmd)}")
    if r.returncode != 0:
        tail = (r.stderr or r.stdout).strip().splitlines()[-1:] or ["(no output)"]
        raise PortError(f"the engine failed (exit {r.returncode}): {tail[0]}")
    return I.read_engine_dump(out)
