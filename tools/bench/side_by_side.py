#!/usr/bin/env python3
"""Side-by-side benchmark: upstream PyTorch DAWN vs the gst-dawn element, on this machine.

One invocation runs, one after the other (never at the same time):

1. optionally, a weight check: the PyTorch networks, rebuilt by the exporter from the pack's
   seed, against the pack's ONNX graphs (so both sides run the very same weights);
2. the PyTorch reference (``tools/bench/torch_ref.py``, a child process with the exporter's
   venv): upstream's inference path for one pass over all frames, timed per stage;
3. our element, once per ``--ours-path`` and ``--ours-variant``: ``gst-launch`` runs it as a
   user does, in a plain ``gst-launch-1.0`` pipeline with the release plugin (speech -> dawnavatar
   -> raw video file; wall time, peak memory and the frame count of the file), ``render`` through
   ``target/release/examples/render`` (speech -> dawnavatar -> x264 -> MP4, plus per-stage times
   from its ``SUMMARY`` line);

on the same portrait, the same audio cut to ``--seconds``, the same frame count and DDIM step
count, and prints stage times, wall times, peak memory and the ratios ours/PyTorch, plus what
else was using the CPU meanwhile. Torch-free (stdlib only); see tools/bench/README.md.

    tools/bench/side_by_side.py --dawn-src DAWN_SRC --pack PACK --torch-python TORCH_PYTHON \\
        --audio tests/data/speech_orig_16k.wav --seconds 8 --steps 20 --json out.json
"""

import argparse
import json
import os
import platform
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
import wave

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# The Python with torch for the PyTorch side (the exporter's environment, docs/exporter.md).
TORCH_PYTHON_ENV = "DAWN_TORCH_PYTHON"


def ort_version():
    """The ONNX Runtime version of Cargo.toml's [package.metadata.onnxruntime]."""
    with open(os.path.join(ROOT, "Cargo.toml"), "rb") as f:
        return tomllib.load(f)["package"]["metadata"]["onnxruntime"]["version"]


DEFAULT_ORT = os.path.join(ROOT, ".ort", "onnxruntime", "capi", f"libonnxruntime.so.{ort_version()}")
DEFAULT_RENDER = os.path.join(ROOT, "target", "release", "examples", "render")
DEFAULT_PLUGIN_DIR = os.path.join(ROOT, "target", "release")
# Matched against "basename(argv[0]) argv[1] ... argv[5]" (not the whole command line: some
# supervisors carry PATH, which mentions .cargo, in their arguments).
HEAVY_PATTERN = (r"^(cargo|rustc|cc1|cc1plus|ld|render|bench|steps|gst-launch-1\.0)(-[0-9a-f]+)?(\s|$)"
                 r"|tools\.export|tools\.bench\.torch_ref")
BUSY_CPU_SHARE = 0.3  # a process using more than this share of one CPU counts as heavy
SAMPLES_PER_FRAME = 640  # 16 kHz / 25 fps
UPSTREAM_MAX_FRAMES = 200  # config/DAWN_*.yaml max_n_frames


# ------------------------------------------------------------------------------------ parsing

def parse_tagged_json(text, tag):
    """The JSON object of the last line ``TAG {...}`` in ``text``, or None."""
    found = None
    for line in text.splitlines():
        line = line.strip().lstrip("\r")
        if line.startswith(tag + " "):
            try:
                found = json.loads(line[len(tag) + 1:])
            except json.JSONDecodeError:
                pass
    return found


def parse_set(items):
    """``['a=1', 'b=x']`` -> ``[('a', '1'), ('b', 'x')]``."""
    out = []
    for it in items or []:
        if "=" not in it:
            raise ValueError(f"--ours-set {it!r}: expected name=value")
        k, v = it.split("=", 1)
        if not k.strip():
            raise ValueError(f"--ours-set {it!r}: empty property name")
        out.append((k.strip(), v.strip()))
    return out


def merge_props(*groups):
    """Later groups override earlier ones; order of first appearance is kept."""
    merged = {}
    for g in groups:
        for k, v in g:
            merged[k] = v
    return list(merged.items())


def variant_props(variant, frames):
    """Element properties of an ours-variant: ``default`` lets the element choose (offline
    chunking), ``one-pass`` does exactly the work of upstream's single pass (one chunk of all
    frames, no context, no look-ahead)."""
    if variant == "default":
        return []
    if variant == "one-pass":
        return [("chunk-frames", str(frames)), ("context-frames", "0"), ("lookahead-frames", "0")]
    raise ValueError(f"unknown ours variant {variant!r}")


def gst_launch_command(clip, image, pack, props, out):
    """The pipeline a user writes (the one in the README), the video written raw to ``out``
    (I420) so the frames can be counted without a decoder."""
    avatar = ["dawnavatar", f"model-path={pack}", f"image={image}"] + [f"{k}={v}" for k, v in props]
    return (["gst-launch-1.0", "-q", "filesrc", f"location={clip}", "!", "decodebin", "!",
             "audioconvert", "!", "audioresample", "!",
             "audio/x-raw,format=F32LE,rate=16000,channels=1", "!"] + avatar +
            ["!", "videoconvert", "!", "video/x-raw,format=I420", "!", "filesink", f"location={out}"])


def i420_frames(path, res):
    """Whole I420 frames of ``res`` x ``res`` in a raw file."""
    return os.path.getsize(path) // (res * res * 3 // 2)


def frames_for_samples(samples, rate):
    """The element's frame count: N = floor(seconds * 25), exactly (floor(samples_16k / 640))."""
    return (samples * 25) // rate


def upstream_frames_for_samples(samples, rate):
    """unified_video_generator.process_audio's count, ``int((samples / 16000) * 25)`` in float
    arithmetic: one frame short of the exact rule for some lengths (e.g. 128640 samples)."""
    return int((samples / rate) * 25)


# -------------------------------------------------------------------------------------- audio

def cut_wav(src, dst, seconds):
    """Writes the first ``seconds`` of PCM WAV ``src`` to ``dst`` (same format); returns
    (samples, rate, channels). Fails when ``src`` is shorter."""
    with wave.open(src, "rb") as w:
        params = w.getparams()
        want = int(round(seconds * params.framerate))
        if want > params.nframes:
            raise ValueError(f"{src}: {params.nframes / params.framerate:.2f} s long, "
                             f"--seconds {seconds} asks for more")
        data = w.readframes(want)
    with wave.open(dst, "wb") as o:
        o.setnchannels(params.nchannels)
        o.setsampwidth(params.sampwidth)
        o.setframerate(params.framerate)
        o.writeframes(data)
    return want, params.framerate, params.nchannels


# ------------------------------------------------------------------------------------ machine

def cpu_model(cpuinfo_text):
    for line in cpuinfo_text.splitlines():
        if line.lower().startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def meminfo_mib(meminfo_text, field="MemTotal"):
    for line in meminfo_text.splitlines():
        if line.startswith(field + ":"):
            return round(int(line.split()[1]) / 1024.0)
    return None


def _read(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def ort_version_from_path(path):
    m = re.search(r"libonnxruntime\.so\.(\d+\.\d+\.\d+)", os.path.basename(path or ""))
    return m.group(1) if m else None


def machine_info(ort_path):
    cpuinfo = _read("/proc/cpuinfo")
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {
        "cpu": cpu_model(cpuinfo),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": usable,
        "cpu_flags_avx512": " avx512f " in " " + cpuinfo.replace("\n", " ") + " ",
        "ram_mib": meminfo_mib(_read("/proc/meminfo")),
        "kernel": platform.release(),
        "python_driver": platform.python_version(),
        "onnxruntime_ours": ort_version_from_path(ort_path),
    }


# ---------------------------------------------------------------------------- other processes

def _proc_cmdline(pid):
    raw = _read(f"/proc/{pid}/cmdline")
    return raw.replace("\x00", " ").strip()


def command_head(cmdline):
    """``basename(argv[0]) argv[1..5]`` of a space-joined command line."""
    argv = cmdline.split()
    if not argv:
        return ""
    return " ".join([os.path.basename(argv[0])] + argv[1:6])


def _proc_stat(pid):
    """(ppid, utime+stime ticks, comm) or None."""
    s = _read(f"/proc/{pid}/stat")
    if not s:
        return None
    r = s.rfind(")")
    comm = s[s.find("(") + 1:r]
    fields = s[r + 2:].split()
    try:
        return int(fields[1]), int(fields[11]) + int(fields[12]), comm
    except (IndexError, ValueError):
        return None


def _pids():
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def own_tree(root_pid):
    """``root_pid`` and all its descendants."""
    parent = {}
    for pid in _pids():
        st = _proc_stat(pid)
        if st:
            parent[pid] = st[0]
    tree = {root_pid}
    changed = True
    while changed:
        changed = False
        for pid, pp in parent.items():
            if pp in tree and pid not in tree:
                tree.add(pid)
                changed = True
    return tree


def cpu_ticks(exclude=()):
    """{pid: (ticks, comm)} of all processes but ``exclude``."""
    out = {}
    for pid in _pids():
        if pid in exclude:
            continue
        st = _proc_stat(pid)
        if st:
            out[pid] = (st[1], st[2])
    return out


def busy_pids(before, after, seconds, share=BUSY_CPU_SHARE):
    """Pids that used more than ``share`` of one CPU between two cpu_ticks() snapshots."""
    hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    out = []
    for pid, (ticks, comm) in after.items():
        b = before.get(pid)
        if b and b[1] == comm and (ticks - b[0]) / hz > share * seconds:
            out.append(pid)
    return out


def heavy_processes(pattern=HEAVY_PATTERN, exclude=(), sample_s=2.0):
    """[(pid, cmdline)] of processes whose command head matches ``pattern`` or that keep more
    than BUSY_CPU_SHARE of a CPU busy over ``sample_s`` seconds (0: no sampling)."""
    rx = re.compile(pattern)
    busy = set()
    if sample_s > 0:
        before = cpu_ticks(exclude)
        time.sleep(sample_s)
        busy = set(busy_pids(before, cpu_ticks(exclude), sample_s))
    out = []
    for pid in _pids():
        if pid in exclude:
            continue
        cmd = _proc_cmdline(pid)
        if cmd and (pid in busy or rx.search(command_head(cmd))):
            out.append((pid, cmd[:200]))
    return out


def loadavg():
    try:
        return [float(x) for x in _read("/proc/loadavg").split()[:3]]
    except ValueError:
        return None


def wait_idle(max_wait_s, load_max, pattern=HEAVY_PATTERN, poll_s=15, log=print, sample_s=2.0,
              settle_s=0.0):
    """Waits until no heavy process (other than ours) runs and the 1-min load average is below
    ``load_max``, continuously for ``settle_s`` seconds (jobs started back to back leave short
    gaps), for at most ``max_wait_s``. Returns (idle, waited_s, what_was_running)."""
    t0 = time.monotonic()
    idle_since = None
    while True:
        mine = own_tree(os.getpid())
        heavy = heavy_processes(pattern, exclude=mine, sample_s=sample_s)
        la = loadavg() or [0.0]
        now = time.monotonic()
        idle = not heavy and la[0] < load_max
        idle_since = (idle_since or now) if idle else None
        settled = idle and now - idle_since >= settle_s
        waited = now - t0
        if settled or waited >= max_wait_s:
            return settled, round(waited), {"loadavg": la, "heavy": [c for _, c in heavy]}
        if idle:
            log(f"  idle for {now - idle_since:.0f} s of {settle_s:.0f} s (load {la[0]:.2f})")
        else:
            log(f"  waiting for an idle machine: load {la[0]:.2f}, {len(heavy)} heavy process(es): "
                + "; ".join(c[:80] for _, c in heavy[:3]))
        time.sleep(min(poll_s, max(1, max_wait_s - waited)))


class CpuMonitor:
    """Samples the CPU time of every process outside our own process tree while a measured
    run goes on, so the report can say what else was using the machine."""

    def __init__(self, interval_s=5.0, abort_share=None, abort_window_s=60.0, on_abort=None):
        """With ``abort_share``, once other processes have used more than that share of one CPU
        over the last ``abort_window_s`` seconds, ``contended`` is set and ``on_abort()`` called
        (the driver kills the measured child and repeats the run later)."""
        self.interval = interval_s
        self.ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self._stop = threading.Event()
        self._thread = None
        self.others = {}      # pid -> [cmd, cpu ticks used while monitored]
        self.loads = []
        self.window = []      # (monotonic time, other ticks used since the previous sample)
        self.abort_share, self.abort_window, self.on_abort = abort_share, abort_window_s, on_abort
        self.contended = False
        self.contention = None

    def _check_contention(self, now):
        self.window = [(t, u) for t, u in self.window if now - t <= self.abort_window]
        if self.contended or self.abort_share is None or not self.window:
            return
        span = self.abort_window
        used = sum(u for _, u in self.window) / self.ticks
        if self._elapsed(now) >= span and used > self.abort_share * span:
            self.contended = True
            top = sorted(self.others.values(), key=lambda e: -e[1])[:2]
            self.contention = (f"other processes used {used:.0f} CPU-s in the last {span:.0f} s: "
                               + "; ".join(c[:80] for c, _ in top))
            if self.on_abort:
                self.on_abort()

    def _elapsed(self, now):
        return now - self._t0

    def _sample(self):
        return cpu_ticks(own_tree(os.getpid()))

    def _run(self):
        self._t0 = time.monotonic()
        prev = self._sample()
        while not self._stop.wait(self.interval):
            cur = self._sample()
            step = 0
            for pid, (ticks, comm) in cur.items():
                before = prev.get(pid)
                used = ticks - before[0] if before and before[1] == comm else 0
                if used > 0:
                    ent = self.others.setdefault(pid, [_proc_cmdline(pid)[:160] or comm, 0])
                    ent[1] += used
                    step += used
            la = loadavg()
            if la:
                self.loads.append(la[0])
            now = time.monotonic()
            self.window.append((now, step))
            self._check_contention(now)
            prev = cur

    def __enter__(self):
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def report(self, wall_s, top=5):
        rows = sorted(self.others.values(), key=lambda e: -e[1])
        total = sum(e[1] for e in rows) / self.ticks
        return {
            "other_cpu_s": round(total, 1),
            "other_cpu_share": round(total / wall_s, 3) if wall_s > 0 else None,
            "loadavg_1min_mean": round(sum(self.loads) / len(self.loads), 2) if self.loads else None,
            "top_others": [{"cmd": c, "cpu_s": round(t / self.ticks, 1)} for c, t in rows[:top]
                           if t / self.ticks >= 1.0],
        }


# -------------------------------------------------------------------------------- child runs

def run_child(cmd, cwd, env, log_path, echo=False, on_start=None):
    """Runs ``cmd`` to completion; returns (rc, wall_s, max_rss_mib, output). The child's own
    peak RSS comes from wait4's rusage (its own children, like ffmpeg, are not counted).
    ``on_start(popen)`` is called once the child runs."""
    t0 = time.perf_counter()
    with open(log_path, "w", encoding="utf-8") as log:
        log.write("$ " + " ".join(shlex.quote(c) for c in cmd) + "\n")
        log.flush()
        p = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if on_start:
            on_start(p)
        chunks = []
        for raw in iter(lambda: p.stdout.read1(65536), b""):
            text = raw.decode("utf-8", "replace")
            chunks.append(text)
            log.write(text)
            log.flush()
            if echo:
                sys.stderr.write(text)
                sys.stderr.flush()
        p.stdout.close()
        _, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    return p.returncode, wall, round(usage.ru_maxrss / 1024.0, 1), "".join(chunks)


def measured_run(cmd, cwd, env, log_path, opt, log=print):
    """Waits for an idle machine, runs ``cmd`` under a CpuMonitor, and repeats the run (up to
    ``opt.retries`` times) when other processes took more than ``opt.abort_share`` of a CPU
    for a minute; the last attempt is never aborted (its contention is reported instead).
    Returns (rc, wall_s, max_rss_mib, output, facts)."""
    aborted = []
    for attempt in range(opt.retries + 1):
        last = attempt == opt.retries
        if opt.wait_idle > 0:
            idle, waited, before = wait_idle(opt.wait_idle, opt.idle_load, log=log, settle_s=opt.idle_settle)
        else:
            idle, waited, before = None, 0, {}
        child = {}

        def kill():
            p = child.get("p")
            if p is not None:
                try:
                    os.kill(p.pid, signal.SIGTERM)  # not reaped before wait4: still our child
                except ProcessLookupError:
                    pass

        share = None if last or not opt.abort_share else opt.abort_share
        with CpuMonitor(interval_s=getattr(opt, "monitor_interval", 5.0), abort_share=share,
                        abort_window_s=getattr(opt, "abort_window", 60.0), on_abort=kill) as mon:
            rc, wall, rss, out = run_child(cmd, cwd, env, log_path, opt.verbose,
                                           on_start=lambda p: child.__setitem__("p", p))
        facts = {"idle_before": idle, "waited_s": waited, "before": before, "others": mon.report(wall),
                 "aborted_attempts": aborted}
        if mon.contended and not last:
            log(f"  aborted after {wall:.0f} s: {mon.contention}; will retry")
            aborted.append({"after_s": round(wall), "why": mon.contention})
            os.replace(log_path, log_path + f".aborted{attempt + 1}")
            continue
        return rc, wall, rss, out, facts


# ------------------------------------------------------------------------------------ compare

def ratio(ours, torch):
    if ours is None or torch is None or torch == 0:
        return None
    return ours / torch


def compare_rows(t, o):
    """Rows (label, torch value, ours value, unit) from a torch summary ``t`` (torch_ref's
    TORCH_SUMMARY plus 'process_wall_s') and an ours summary ``o`` (render's SUMMARY plus
    'process_wall_s'); either may be None."""
    t = t or {}
    o = o or {}
    st = t.get("stages_s", {})
    ms = lambda k: (o[k] / 1000.0) if k in o else None  # noqa: E731
    tv = lambda k: st.get(k)  # noqa: E731
    rows = [
        ("frames", t.get("frames"), o.get("frames"), ""),
        ("audio encoder (HuBERT)", tv("audio"), ms("audio_ms"), "s"),
        ("PBNet pose + blink", tv("pbnet"), ms("pbnet_ms"), "s"),
        ("denoiser (U-Net calls)", t.get("unet_s"), ms("denoiser_ms"), "s"),
        ("decoder (LFG)", tv("decoder"), ms("decoder_ms"), "s"),
    ]
    if t:
        host_t = (st.get("diffusion", 0) - t.get("unet_s", 0)) + st.get("portrait", 0) + st.get("output", 0)
    else:
        host_t = None
    rows += [
        ("host / glue (sampler, tensors, uint8)", host_t, ms("host_ms"), "s"),
        ("inference total", t.get("inference_s"), ms("engine_total_ms"), "s"),
        ("setup (build / load models)", t.get("setup_s"), None, "s"),
        ("pipeline wall (ours: element incl. load, x264, AAC)", None, o.get("wall_s"), "s"),
        ("process wall (start to exit)", t.get("process_wall_s"), o.get("process_wall_s"), "s"),
        ("peak RSS, whole process", t.get("peak_rss_mib"), o.get("peak_rss_mib"), "MiB"),
        ("peak RSS during inference", t.get("peak_rss_inference_mib"), None, "MiB"),
    ]
    return rows


def fmt(v, unit):
    if v is None:
        return "-"
    if unit == "MiB":
        return f"{v:,.0f}"
    if unit == "s":
        return f"{v:,.1f}" if v >= 10 else f"{v:.2f}"
    return str(v)


def table(rows, ours_name="ours"):
    head = ("stage", "PyTorch", ours_name, "unit", "ours/torch")
    body = []
    for label, tv, ov, unit in rows:
        r = ratio(ov, tv) if unit else None
        body.append((label, fmt(tv, unit), fmt(ov, unit), unit, f"{r:.3f}" if r is not None else "-"))
    widths = [max(len(str(x[i])) for x in [head] + body) for i in range(5)]
    line = lambda x: "  ".join(  # noqa: E731
        str(c).ljust(widths[i]) if i == 0 else str(c).rjust(widths[i]) for i, c in enumerate(x))
    out = [line(head), "  ".join("-" * w for w in widths)]
    out += [line(b) for b in body]
    return "\n".join(out)


# ---------------------------------------------------------------------------------------- main

def run_ours(path, name, props, clip, image, res, work, log_dir, env, args):
    """One timed run of our element; returns its summary (process wall, peak RSS, frames, and
    for ``render`` the per-stage times of its SUMMARY line)."""
    log_path = os.path.join(log_dir, f"ours_{name.replace(':', '_')}.log")
    if path == "gst-launch":
        out = os.path.join(work, f"ours_{name.replace(':', '_')}.i420")
        cmd = gst_launch_command(clip, os.path.abspath(image), os.path.abspath(args.pack), props, out)
    else:
        out = os.path.join(work, f"ours_{name.replace(':', '_')}.mp4")
        cmd = [args.render, "--image", os.path.abspath(image), "--audio", clip, "--model",
               os.path.abspath(args.pack), "--out", out]
        for k, v in props:
            cmd += ["--set", f"{k}={v}"]
    rc, wall, maxrss, text, facts = measured_run(cmd, ROOT, env, log_path, args, log)
    if rc != 0:
        raise SystemExit(f"{name} failed (rc {rc}); see {log_path}")
    if path == "gst-launch":
        osum = {"frames": i420_frames(out, res), "peak_rss_mib": maxrss}
        os.remove(out)
    else:
        osum = parse_tagged_json(text, "SUMMARY")
        if osum is None:
            raise SystemExit(f"render printed no SUMMARY; see {log_path}")
    osum.update(process_wall_s=round(wall, 2), rusage_maxrss_mib=maxrss, **facts)
    return osum


def build_parser():
    p = argparse.ArgumentParser(
        prog="tools/bench/side_by_side.py",
        description="Upstream PyTorch DAWN vs the gst-dawn element on the same inputs and weights.")
    p.add_argument("--dawn-src", required=True, help="DAWN-pytorch checkout (imported, never copied)")
    p.add_argument("--pack", required=True, help="model pack (random-weight packs are rebuilt in torch from their seed)")
    p.add_argument("--resolution", type=int, choices=(128, 256), help="default: the pack's")
    p.add_argument("--audio", default=os.path.join(ROOT, "tests/data/speech_orig_16k.wav"))
    p.add_argument("--image", help="portrait (default tests/data/skimage_astronaut_<res>.png)")
    p.add_argument("--seconds", type=float, default=8.0, help="audio cut to this length (8 s = 200 frames)")
    p.add_argument("--steps", type=int, default=20, help="DDIM steps on both sides")
    p.add_argument("--ours-set", action="append", default=[], metavar="PROP=VALUE",
                   help="element property for our runs (repeatable), e.g. chunk-frames=80")
    p.add_argument("--ours-variant", action="append", choices=("default", "one-pass"),
                   help="our runs: default = the element's own chunking; one-pass = one chunk of all "
                        "frames, no context/look-ahead (upstream's work). Repeatable; default: default")
    p.add_argument("--ours-path", action="append", choices=("gst-launch", "render"),
                   help="how our element runs: gst-launch = a plain gst-launch-1.0 pipeline with the "
                        "release plugin (what a user runs; wall and memory only), render = the render "
                        "example (adds per-stage times). Repeatable; default: gst-launch")
    p.add_argument("--skip-torch", action="store_true")
    p.add_argument("--skip-ours", action="store_true")
    p.add_argument("--no-weight-check", action="store_true",
                   help="skip the torch-vs-pack weight check (about a minute)")
    p.add_argument("--checkpoints", help="trained pack: DAWN checkpoints folder for the torch side")
    p.add_argument("--hubert", help="trained pack: local facebook/hubert-large-ls960-ft")
    p.add_argument("--torch-python", default=os.environ.get(TORCH_PYTHON_ENV),
                   help=f"python with torch, the exporter's environment (default: ${TORCH_PYTHON_ENV})")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: usable CPUs)")
    p.add_argument("--torch-max-frames", type=int, default=UPSTREAM_MAX_FRAMES,
                   help="upstream's max_n_frames (200; users raise it for longer clips, issue #11)")
    p.add_argument("--render", default=DEFAULT_RENDER, help="render example binary (cargo build --release --example render)")
    p.add_argument("--plugin-dir", default=DEFAULT_PLUGIN_DIR,
                   help="folder with libgstdawn.so for --ours-path gst-launch (cargo build --release)")
    p.add_argument("--ort-dylib", default=os.environ.get("ORT_DYLIB_PATH", DEFAULT_ORT))
    p.add_argument("--wait-idle", type=float, default=0, metavar="S",
                   help="opt-in: before each timed run wait up to S seconds for no other heavy process "
                        "and a low load (default 0: start at once; the report still says what else ran)")
    p.add_argument("--idle-load", type=float, default=None,
                   help="1-min load average counted as idle (default: 0.5 x usable CPUs)")
    p.add_argument("--idle-settle", type=float, default=60, metavar="S",
                   help="the machine must stay idle this long before a timed run starts (default 60)")
    p.add_argument("--abort-share", type=float, default=0.5, metavar="X",
                   help="abort and repeat a timed run when other processes used more than X of one CPU "
                        "over a minute (default 0.5; 0 = never)")
    p.add_argument("--retries", type=int, default=3, help="repeats of a contended run (default 3)")
    p.add_argument("--json", help="write all results here")
    p.add_argument("--log-dir", help="child logs (default: a temp dir, printed)")
    p.add_argument("--verbose", action="store_true", help="echo the children's output")
    return p


def read_manifest(pack):
    with open(os.path.join(pack, "manifest.json"), encoding="utf-8") as f:
        return json.load(f)


def pack_facts(man):
    prov = man.get("provenance", {})
    fl = prov.get("face_loc_encoder")  # a dict with sha256 in newer packs, a note in older ones
    return {
        "name": man.get("name"),
        "resolution": man.get("resolution"),
        "weights": prov.get("weights"),
        "precision": prov.get("precision"),
        "attention": prov.get("attention", "dense"),
        "seed": (prov.get("exporter") or {}).get("seed", 0),
        "face_loc_sha256": fl.get("sha256") if isinstance(fl, dict) else None,
        "exporter_torch": (prov.get("exporter") or {}).get("torch"),
    }


def log(msg=""):
    print(msg, flush=True)


def main(argv=None):
    args = build_parser().parse_args(argv)
    if not args.skip_torch and not args.torch_python:
        raise SystemExit(f"the PyTorch side needs a Python with torch: pass --torch-python PYTHON or set "
                         f"${TORCH_PYTHON_ENV} (the exporter's environment, docs/exporter.md), or use --skip-torch")
    variants = args.ours_variant or ["default"]
    paths = args.ours_path or ["gst-launch"]
    try:
        user_props = parse_set(args.ours_set)
    except ValueError as e:
        raise SystemExit(str(e))
    man = read_manifest(args.pack)
    pack = pack_facts(man)
    res = args.resolution or pack["resolution"]
    if res != pack["resolution"]:
        raise SystemExit(f"--resolution {res} but {args.pack} is a {pack['resolution']} pack")
    image = args.image or os.path.join(ROOT, f"tests/data/skimage_astronaut_{res}.png")
    if not os.path.exists(image):
        image = os.path.join(ROOT, "tests/data/skimage_astronaut_128.png")
    if pack["weights"] != "random" and not args.skip_torch and not (args.checkpoints and args.hubert):
        raise SystemExit("a trained pack needs --checkpoints and --hubert for the PyTorch side")
    mach = machine_info(args.ort_dylib)
    threads = args.threads or mach["usable_cpus"] or 1
    args.idle_load = args.idle_load if args.idle_load is not None else 0.5 * (mach["usable_cpus"] or 1)

    work = tempfile.mkdtemp(prefix="dawn-side-by-side-")
    log_dir = args.log_dir or work
    os.makedirs(log_dir, exist_ok=True)
    clip = os.path.join(work, f"speech_{args.seconds:g}s.wav")
    samples, rate, channels = cut_wav(args.audio, clip, args.seconds)
    frames = frames_for_samples(samples, rate)
    if upstream_frames_for_samples(samples, rate) != frames:
        raise SystemExit(f"--seconds {args.seconds:g}: upstream's float rule gives "
                         f"{upstream_frames_for_samples(samples, rate)} frames, the element {frames}; "
                         f"pick a length that is a multiple of 40 ms")
    if frames > args.torch_max_frames and not args.skip_torch:
        raise SystemExit(f"{frames} frames > upstream's max_n_frames {args.torch_max_frames}: the PyTorch "
                         f"pass would be truncated; use --seconds <= {args.torch_max_frames / 25:g} or raise "
                         f"--torch-max-frames (what users of upstream do, issue #11)")

    log(f"side-by-side: pack {args.pack} ({pack['resolution']}, {pack['weights']} weights, seed "
        f"{pack['seed']}, {pack['precision']}, {pack['attention']} attention)")
    log(f"  clip: {args.audio} cut to {args.seconds:g} s ({samples} samples @ {rate} Hz, {channels} ch) -> "
        f"{frames} frames; {args.steps} DDIM steps; portrait {image}")
    log(f"  machine: {mach['cpu']}, {mach['usable_cpus']} usable CPUs, {mach['ram_mib']} MiB RAM; "
        f"torch threads {threads}; logs in {log_dir}")
    results = {"machine": mach, "pack": {"path": os.path.abspath(args.pack), **pack},
               "inputs": {"audio": os.path.abspath(args.audio), "seconds": args.seconds,
                          "samples": samples, "rate": rate, "frames": frames, "steps": args.steps,
                          "image": os.path.abspath(image)},
               "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}

    def save():  # after every run, so that a later failure keeps what was measured
        if args.json:
            with open(args.json, "w", encoding="utf-8") as f:
                json.dump(results, f, indent=1)

    env_torch = dict(os.environ, TQDM_DISABLE="1", PYTHONWARNINGS="ignore",
                     PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    torch_common = ["--dawn-src", os.path.abspath(args.dawn_src), "--resolution", str(res),
                    "--seed", str(pack["seed"]), "--threads", str(threads)]
    if args.checkpoints:
        torch_common += ["--checkpoints", args.checkpoints, "--hubert", args.hubert]

    # 1. weight check (untimed)
    if not args.skip_torch and not args.no_weight_check:
        log("\n[1] weight check: torch networks rebuilt from the pack's seed vs the pack's ONNX graphs")
        cmd = [args.torch_python, "-m", "tools.bench.torch_ref", "check", "--pack",
               os.path.abspath(args.pack)] + torch_common
        rc, wall, _, out = run_child(cmd, ROOT, env_torch, os.path.join(log_dir, "weight_check.log"), args.verbose)
        chk = parse_tagged_json(out, "TORCH_CHECK")
        if chk is None:
            raise SystemExit(f"weight check failed (rc {rc}); see {log_dir}/weight_check.log")
        if pack["face_loc_sha256"] and chk.get("face_loc_sha256") != pack["face_loc_sha256"]:
            chk["all_pass"] = False
            chk["face_loc_mismatch"] = True
        results["weight_check"] = chk
        save()
        worst = max(r["rel_err"] for r in chk["rows"])
        log(f"  {'identical weights' if chk['all_pass'] else 'WEIGHTS DIFFER'}: {len(chk['rows'])} graphs, "
            f"worst relative error {worst:.1e} (bound 1e-3), {wall:.0f} s")
        if not chk["all_pass"]:
            raise SystemExit("the PyTorch networks do not match the pack; the comparison would be meaningless")

    # 2. PyTorch reference
    tsum = None
    if not args.skip_torch:
        log("\n[2] PyTorch reference (upstream code, one pass over all frames)")
        cmd = [args.torch_python, "-m", "tools.bench.torch_ref", "run", "--audio", clip, "--image",
               os.path.abspath(image), "--steps", str(args.steps), "--max-frames", str(args.torch_max_frames),
               "--workdir", os.path.join(work, "torch")] + torch_common
        rc, wall, maxrss, out, facts = measured_run(cmd, ROOT, env_torch, os.path.join(log_dir, "torch.log"),
                                                    args, log)
        tsum = parse_tagged_json(out, "TORCH_SUMMARY")
        if tsum is None:
            raise SystemExit(f"PyTorch run failed (rc {rc}); see {log_dir}/torch.log")
        tsum.update(process_wall_s=round(wall, 2), rusage_maxrss_mib=maxrss, **facts)
        results["torch"] = tsum
        save()
        log(f"  done in {wall:.0f} s: inference {tsum['inference_s']:.1f} s, peak RSS "
            f"{tsum['peak_rss_mib']:.0f} MiB; other processes used {tsum['others']['other_cpu_s']} CPU-s")

    # 3. ours
    ours = []
    if not args.skip_ours:
        if "render" in paths and not os.path.exists(args.render):
            raise SystemExit(f"{args.render} missing: cargo build --release --example render")
        if "gst-launch" in paths and not os.path.exists(os.path.join(args.plugin_dir, "libgstdawn.so")):
            raise SystemExit(f"{args.plugin_dir}/libgstdawn.so missing: cargo build --release")
        env_ours = dict(os.environ)
        if os.path.exists(args.ort_dylib):
            env_ours["ORT_DYLIB_PATH"] = args.ort_dylib
        env_ours["GST_PLUGIN_PATH"] = os.path.abspath(args.plugin_dir)
        runs = [(path, variant) for path in paths for variant in variants]
        for i, (path, variant) in enumerate(runs):
            name = f"{path}:{variant}"
            props = merge_props([("execution-provider", "cpu"), ("sampling-steps", str(args.steps))],
                                variant_props(variant, frames), user_props)
            log(f"\n[3.{i + 1}] ours ({name}): " + " ".join(f"{k}={v}" for k, v in props))
            osum = run_ours(path, name, props, clip, image, res, work, log_dir, env_ours, args)
            osum.update(variant=name, props=dict(props))
            if osum["frames"] != frames:
                raise SystemExit(f"{name} gave {osum['frames']} frames, expected {frames}")
            ours.append(osum)
            results["ours"] = ours
            save()
            engine = f"engine {osum['engine_total_ms'] / 1000:.1f} s, " if "engine_total_ms" in osum else ""
            log(f"  done in {osum['process_wall_s']:.0f} s: {engine}peak RSS "
                f"{osum['peak_rss_mib']:.0f} MiB; other processes used {osum['others']['other_cpu_s']} CPU-s")
        results["ours"] = ours

    # 4. report
    log("\n== results " + "=" * 60)
    log(f"machine: {mach['cpu']}, {mach['usable_cpus']} CPUs, {mach['ram_mib']} MiB RAM, Linux {mach['kernel']}; "
        f"torch {tsum['torch'] if tsum else '-'} ({threads} threads), onnxruntime {mach['onnxruntime_ours']} (ours, CPU EP)")
    log(f"inputs: {frames} frames ({args.seconds:g} s), {args.steps} DDIM steps, {res}x{res}, "
        f"{pack['weights']} weights (seed {pack['seed']}), pack attention {pack['attention']}")
    results["comparisons"] = []
    for o in (ours or [None]):
        name = f"ours:{o['variant']}" if o else "ours"
        log("")
        if o:
            log(f"{name}: " + " ".join(f"{k}={v}" for k, v in o["props"].items()))
        rows = compare_rows(tsum, o)
        log(table(rows, name))
        results["comparisons"].append({"ours": name, "rows": [
            {"stage": lb, "torch": tv, "ours": ov, "unit": u, "ratio": ratio(ov, tv) if u else None}
            for lb, tv, ov, u in rows]})
    log("\nother load during the runs (CPU-seconds used by processes outside this benchmark):")
    for name, s in ([("torch", tsum)] if tsum else []) + [(f"ours:{o['variant']}", o) for o in ours]:
        oth = s["others"]
        tops = "; ".join(f"{e['cmd'][:70]} ({e['cpu_s']} s)" for e in oth["top_others"]) or "nothing notable"
        rep = f"; {len(s['aborted_attempts'])} earlier attempt(s) aborted for contention" if s["aborted_attempts"] else ""
        log(f"  {name}: {oth['other_cpu_s']} CPU-s ({(oth['other_cpu_share'] or 0) * 100:.0f}% of one CPU), "
            f"mean 1-min load {oth['loadavg_1min_mean']} (incl. the run itself); idle before start: {s['idle_before']}{rep}; {tops}")
    if args.json:
        save()
        log(f"\nwrote {args.json}")
    if args.log_dir:  # the logs live elsewhere: drop the clip, the MP4s and upstream's cache files
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
