"""The GPU side of the GPU check. Runs with the GPU machine's own Python (numpy and onnx there).

    python3 tools/gpu-check/remote.py call .gpu-check/callN     # one per staged call folder
    python3 tools/gpu-check/remote.py run --root ROOT ...       # the measurements alone

`call` checks the call folder's parts (sha256) and keeps them in --work (default
/tmp/gpu-check: it lasts only while the machine stays warm); once every part is there it
reassembles and unpacks the payload (sha256 of the archive and of every file), then runs the
measurements. `run`: finds CUDA and cuDNN in the machine's PyTorch install, refills the packs'
weights with seeded random values, runs `bench` for each entry of the plan (plan.json) and a
pipeline of `dawnavatar` elements, and writes one machine-readable `FIGURE {json}` line per
figure to OUT/figures.jsonl (OUT: $OUT, what comes back), a readable OUT/summary.txt and the
programs' output in OUT/log.txt.
"""

import argparse
import glob
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import tarfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import parts  # noqa: E402

REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
ORT_LIB = "libonnxruntime.so.1.31.1"
# What the CUDA provider links (NEEDED) or opens at run time, and where it comes from.
CUDA_LIBS = {
    "libcudart.so.13": "nvidia-cuda-runtime",
    "libcublas.so.13": "nvidia-cublas",
    "libcublasLt.so.13": "nvidia-cublas",
    "libcurand.so.10": "nvidia-curand",
    "libcudnn.so.9": "nvidia-cudnn-cu13",
    "libcufft.so.*": "nvidia-cufft",
    "libnvrtc.so.13": "nvidia-cuda-nvrtc",
}
DRIVER_LIB = "libcuda.so.1"


class Report:
    """FIGURE lines (file + stdout), the log, and the summary."""

    def __init__(self, out):
        os.makedirs(out, exist_ok=True)
        self.out = out
        self.figures = os.path.join(out, "figures.jsonl")
        self.log_path = os.path.join(out, "log.txt")
        self.summary = []

    def figure(self, name, value, unit="", **extra):
        rec = {"name": name, "value": value, "unit": unit, **extra}
        line = "FIGURE " + json.dumps(rec, sort_keys=True)
        print(line, flush=True)
        with open(self.figures, "a") as f:
            f.write(line + "\n")

    def log(self, text):
        with open(self.log_path, "a") as f:
            f.write(text if text.endswith("\n") else text + "\n")

    def say(self, text):
        print(f"[gpu-check] {text}", flush=True)
        self.summary.append(text)
        self.log(f"[gpu-check] {text}")
        with open(os.path.join(self.out, "summary.txt"), "w") as f:
            f.write("\n".join(self.summary) + "\n")


# ----------------------------------------------------------------------------- transport

def receive_call(call_dir, work):
    missing = parts.receive(call_dir, work)
    root = os.path.join(work, "root")
    if missing:
        return None, missing
    done = os.path.join(root, ".unpacked")
    manifest = parts._manifest(work)
    if os.path.isfile(done) and open(done).read().strip() == manifest["sha256"]:
        return root, []
    archive = os.path.join(work, manifest["archive"])
    parts.join(work, archive)
    shutil.rmtree(root, ignore_errors=True)
    with tarfile.open(archive, "r:xz") as t:
        if hasattr(tarfile, "data_filter"):
            t.extractall(root, filter="data")
        else:
            t.extractall(root)
    verify_files(root)
    os.remove(archive)
    for p in manifest["parts"]:
        os.remove(os.path.join(work, p["name"]))
    with open(done, "w") as f:
        f.write(manifest["sha256"])
    return root, []


def verify_files(root):
    bad = []
    with open(os.path.join(root, "FILES.sha256")) as f:
        for line in f:
            digest, rel = line.rstrip("\n").split("  ", 1)
            if parts.sha256_file(os.path.join(root, rel)) != digest:
                bad.append(rel)
    if bad:
        raise parts.PartsError(f"unpacked files differ from the staging: {', '.join(bad)}")


# ----------------------------------------------------------------------------- CUDA libraries

def cuda_lib_dirs():
    """Folders holding the CUDA and cuDNN libraries of the installed nvidia-* wheels (PyTorch's
    dependencies), whatever their layout (nvidia/<lib>/lib or nvidia/cu13/lib)."""
    dirs = []
    for dist in importlib.metadata.distributions():
        name = (dist.metadata["Name"] or "").lower()
        if not (name.startswith("nvidia-") or name == "torch"):
            continue
        for f in dist.files or []:
            if ".so" in f.name and f.name.startswith("lib"):
                d = os.path.dirname(str(dist.locate_file(f)))
                if d not in dirs:
                    dirs.append(d)
    return dirs


def find_libs(dirs):
    """soname pattern -> path found (or None)."""
    found = {}
    for pattern in list(CUDA_LIBS) + [DRIVER_LIB]:
        hit = None
        for d in dirs + ["/usr/local/nvidia/lib64", "/usr/local/nvidia/lib", "/usr/lib/x86_64-linux-gnu",
                         "/usr/lib64", "/usr/local/cuda/lib64"]:
            m = sorted(glob.glob(os.path.join(d, pattern)))
            if m:
                hit = m[0]
                break
        found[pattern] = hit
    return found


# ----------------------------------------------------------------------------- measurements

class GpuMemory:
    """Samples nvidia-smi's memory.used every 200 ms while a program runs."""

    def __init__(self):
        self.samples, self.proc, self.thread, self.why = [], None, None, None

    def __enter__(self):
        if not shutil.which("nvidia-smi"):
            self.why = "nvidia-smi not found"
            return self
        self.proc = subprocess.Popen(
            ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits", "-i", "0", "-lms", "200"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        return self

    def _read(self):
        for line in self.proc.stdout:
            v = parse_smi_mib(line)
            if v is not None:
                self.samples.append(v)

    def __exit__(self, *exc):
        if self.proc:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.thread.join(timeout=10)
            if not self.samples:
                self.why = "nvidia-smi gave no samples"
        return False

    def peak(self):
        return max(self.samples) if self.samples else None


def parse_smi_mib(line):
    """`12345` (nvidia-smi memory.used, csv, no units) -> 12345.0; anything else -> None."""
    try:
        return float(line.strip().split(",")[0])
    except ValueError:
        return None


def gpu_identity(report):
    if not shutil.which("nvidia-smi"):
        report.figure("gpu_memory_total_mib", None, "MiB", why="nvidia-smi not found (no NVIDIA GPU)")
        return
    r = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total",
                        "--format=csv,noheader,nounits", "-i", "0"], capture_output=True, text=True)
    fields = [f.strip() for f in r.stdout.strip().split(",")]
    if r.returncode != 0 or len(fields) < 3:
        report.figure("gpu_memory_total_mib", None, "MiB", why=f"nvidia-smi: {r.stderr.strip() or r.stdout.strip()}")
        return
    report.figure("gpu_memory_total_mib", parse_smi_mib(fields[2]), "MiB", gpu=fields[0], driver=fields[1])
    report.say(f"GPU: {fields[0]}, driver {fields[1]}, {fields[2]} MiB")


def run_logged(report, cmd, env, timeout):
    """Runs `cmd`, logging its output; returns (exit code or None on timeout, output, seconds)."""
    report.log("$ " + " ".join(cmd))
    start = time.time()
    try:
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
        code, out = r.returncode, r.stdout + r.stderr
    except subprocess.TimeoutExpired as e:
        code = None
        out = (e.stdout or b"").decode(errors="replace") + (e.stderr or b"").decode(errors="replace")
    report.log(out)
    return code, out, time.time() - start


def bench_run(report, bench, pack, spec, provider, figures_file, env, timeout):
    label = spec.get("label", "")
    # Media from this checkout: the paths compiled into bench are the staging machine's.
    cmd = [bench, "--model", pack, "--provider", provider, "--live", "--placement",
           "--audio", os.path.join(REPO, "tests", "data", "speech_orig_16k.wav"),
           "--image", os.path.join(REPO, "tests", "data", "skimage_astronaut_256.png"),
           "--seconds", str(spec.get("seconds", 8)), "--streams", str(spec.get("streams", "1")),
           "--figures", figures_file]
    for k in ("chunk", "context", "lookahead", "steps"):
        if k in spec:
            cmd += [f"--{k}", str(spec[k])]
    with GpuMemory() as mem:
        code, out, took = run_logged(report, cmd, env, timeout)
    name = os.path.basename(pack) + (f" [{label}]" if label else "")
    ctx = {"pack": os.path.basename(pack), "label": label, "streams": str(spec.get("streams", "1"))}
    report.figure("gpu_mem_peak_mib", mem.peak(), "MiB", **ctx, **({"why": mem.why} if mem.why else {}))
    report.figure("bench_wall_s", round(took, 2), "s", exit_code=code, **ctx)
    if code != 0:
        tail = "\n".join(out.strip().splitlines()[-6:])
        report.say(f"{name}: bench {'timed out' if code is None else f'failed ({code})'}:\n{tail}")
        return False
    for line in out.splitlines():
        if line.startswith(("live ", "compute ", "latency ", "sharing ", "placement ")):
            report.say(f"{name}: {line}")
    return True


def element_run(report, spec, gst, plugin_dirs, packs, provider, env, timeout):
    """A pipeline of N `dawnavatar` elements on one pack (they share one engine)."""
    n = int(spec.get("elements", 3))
    pack = os.path.join(packs, spec["pack"])
    wav = os.path.join(REPO, "tests", "data", "speech_orig_16k.wav")
    image = os.path.join(REPO, "tests", "data", "skimage_astronaut_256.png")
    branches = " ".join(
        f"t. ! queue ! dawnavatar model-path={pack} image={image} execution-provider={provider} "
        f"seed={i + 1} sampling-steps={spec.get('steps', 20)} ! fakesink sync=false" for i in range(n))
    desc = (f"filesrc location={wav} ! wavparse ! audioconvert ! audioresample ! tee name=t {branches}")
    env = dict(env)
    env.update(gst)
    env["GST_PLUGIN_PATH_1_0"] = ":".join(plugin_dirs)
    cmd = [env.pop("GST_LAUNCH"), "-q", *desc.split()]
    with GpuMemory() as mem:
        code, out, took = run_logged(report, cmd, env, timeout)
    ctx = {"pack": spec["pack"], "elements": n, "audio_s": 10.8}
    report.figure("element_pipeline_s", round(took, 2) if code == 0 else None, "s", exit_code=code, **ctx,
                  **({} if code == 0 else {"why": "\n".join(out.strip().splitlines()[-4:])}))
    report.figure("element_gpu_mem_peak_mib", mem.peak(), "MiB", **ctx, **({"why": mem.why} if mem.why else {}))
    report.say(f"{n} dawnavatar elements on {spec['pack']}: "
               + (f"{took:.1f} s for 10.8 s of speech each" if code == 0 else f"failed ({code}): {out.strip()[-400:]}"))


def fill_packs(report, root, work, names):
    sys.path.insert(0, HERE)
    import weights  # numpy + onnx: imported only here, the transport needs neither
    out = os.path.join(work, "packs")
    todo = [n for n in names if not os.path.isfile(os.path.join(out, n, ".filled"))]
    start = time.time()
    if todo:
        weights.fill_packs(os.path.join(root, "packs-store"), out, todo)
        for n in todo:
            open(os.path.join(out, n, ".filled"), "w").close()
    report.figure("refill_s", round(time.time() - start, 2), "s", packs=",".join(todo))
    return out


def run(args, report):
    start = time.time()
    deadline = start + args.deadline_s
    root = os.path.abspath(args.root)
    plan = json.load(open(args.plan))
    gpu_identity(report)
    env = dict(os.environ)
    ort_dir = os.path.join(root, "ort")
    env["ORT_DYLIB_PATH"] = os.path.join(ort_dir, ORT_LIB)
    lib_path = [ort_dir]
    if args.provider != "cpu":
        dirs = cuda_lib_dirs()
        found = find_libs(dirs)
        lost = [k for k, v in found.items() if v is None]
        report.figure("cuda_libs_missing", len(lost), "libs", missing=lost,
                      found={k: v for k, v in found.items() if v})
        required = [k for k in lost if k not in ("libcufft.so.*", "libnvrtc.so.13")]
        if required:
            report.say("CUDA libraries not found: " + ", ".join(f"{k} (wheel {CUDA_LIBS.get(k, 'driver')})"
                                                               for k in required)
                       + f"; searched the nvidia-* wheels' folders {dirs} and the system. Fix: a Python "
                         "with torch 2.11+cu130 (its nvidia wheels), or carry those wheels (.whl, docs)")
            return 2
        lib_path += [os.path.dirname(v) for v in found.values() if v]
    gst_lib = os.path.join(root, "gst", "lib")
    if os.path.isdir(gst_lib):
        lib_path.append(gst_lib)
    env["LD_LIBRARY_PATH"] = ":".join(dict.fromkeys(lib_path + [p for p in env.get("LD_LIBRARY_PATH", "").split(":") if p]))
    names = sorted({r["pack"] for r in plan["runs"]} | ({plan["element"]["pack"]} if plan.get("element") else set()))
    packs = fill_packs(report, root, args.work, names)
    bench = args.bench or os.path.join(root, "bin", "bench")
    ok = True
    for spec in plan["runs"]:
        left = deadline - time.time()
        if left < spec.get("budget_s", 60):
            report.say(f"{spec['pack']} {spec.get('label', '')}: not run, {left:.0f} s left of the deadline")
            report.figure("bench_wall_s", None, "s", pack=spec["pack"], label=spec.get("label", ""),
                          why="not run: deadline")
            continue
        ok &= bench_run(report, bench, os.path.join(packs, spec["pack"]), spec, args.provider,
                        report.figures, env, timeout=min(left, spec.get("timeout_s", 240)))
    el = plan.get("element")
    if el:
        left = deadline - time.time()
        if left < el.get("budget_s", 60):
            report.say(f"element pipeline: not run, {left:.0f} s left of the deadline")
            report.figure("element_pipeline_s", None, "s", pack=el["pack"], why="not run: deadline")
        else:
            gst_env = gst_environment(root, args.work, args.system_gst)
            plugin_dirs = [args.plugin_dir] if args.plugin_dir else [os.path.join(root, "gst", "plugins")]
            element_run(report, el, gst_env, plugin_dirs, packs, args.provider, env,
                        timeout=min(left, el.get("timeout_s", 240)))
    report.figure("gpu_check_s", round(time.time() - start, 1), "s")
    report.say(f"done in {time.time() - start:.0f} s; figures in {report.figures}")
    return 0 if ok else 1


def gst_environment(root, work, system):
    """GStreamer from the private folder (or, for a dry run here, the system's)."""
    if system:
        return {"GST_LAUNCH": shutil.which("gst-launch-1.0") or "gst-launch-1.0",
                "GST_REGISTRY_1_0": os.path.join(work, "registry.bin")}
    gst = os.path.join(root, "gst")
    return {
        "GST_LAUNCH": os.path.join(gst, "bin", "gst-launch-1.0"),
        "GST_PLUGIN_SYSTEM_PATH_1_0": os.path.join(gst, "plugins"),
        "GST_PLUGIN_SCANNER_1_0": os.path.join(gst, "libexec", "gst-plugin-scanner"),
        "GST_REGISTRY_1_0": os.path.join(work, "registry.bin"),
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)

    def common(s):
        s.add_argument("--work", default="/tmp/gpu-check", help="where parts, packs and the payload live")
        s.add_argument("--out", default=os.environ.get("OUT") or "gpu-check-out", help="figures go here ($OUT)")
        s.add_argument("--plan", default=os.path.join(HERE, "plan.json"))
        s.add_argument("--provider", default="cuda", choices=("cuda", "tensorrt", "cpu"))
        s.add_argument("--deadline-s", type=float, default=500, help="stop starting runs after this")
        s.add_argument("--bench", help="bench binary (default ROOT/bin/bench)")
        s.add_argument("--system-gst", action="store_true", help="dry run: this machine's GStreamer")
        s.add_argument("--plugin-dir", help="dry run: where libgstdawn.so is")

    c = sub.add_parser("call", help="receive one call folder; run once all parts are there")
    c.add_argument("call_dir")
    c.add_argument("--no-run", action="store_true", help="only receive, reassemble and verify")
    common(c)
    r = sub.add_parser("run", help="the measurements, on an unpacked payload")
    r.add_argument("--root", required=True)
    common(r)
    a = p.parse_args(argv)
    report = Report(os.path.abspath(a.out))
    if a.cmd == "call":
        try:
            root, missing = receive_call(a.call_dir, a.work)
        except parts.PartsError as e:
            report.say(f"transport: {e}")
            return 3
        if missing:
            report.say(f"received {a.call_dir}; waiting for {', '.join(missing)} (next call, within 30 s)")
            return 0
        report.say(f"payload complete and verified in {root}")
        if a.no_run:
            return 0
        a.root = root
    return run(a, report)


if __name__ == "__main__":
    sys.exit(main())
