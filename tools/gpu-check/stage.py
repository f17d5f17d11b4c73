"""Stages the GPU check: everything the GPU machine needs, cut into call folders that fit.

Builds the release plugin and the `bench` example, gathers GStreamer from Debian packages
(sharedlibs.py), takes ONNX Runtime's CUDA build from the onnxruntime-gpu wheel with only the
target GPU's cubins kept (fatbin.py), strips the weights from the model packs (weights.py),
packs it all into one xz archive and cuts that into parts, one folder per call (parts.py):

    .venv/bin/python tools/gpu-check/stage.py --ort-wheel onnxruntime_gpu-1.31.1-...whl \
        --packs PACK128 PACK128FP16 PACK256 PACK256FP16 [--keep-sm 90] [--out .gpu-check]

Then, on the GPU machine, one call per folder (docs/performance.md, "GPU check"):
    python3 tools/gpu-check/remote.py call .gpu-check/callN
The repository's working tree travels with every call, so the part size is what 64 MiB leaves
next to it. `--check` re-checks the call folders against the working tree as it is now;
`--recut` cuts the archive again for it (no rebuild).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fatbin  # noqa: E402
import parts  # noqa: E402
import sharedlibs  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
ORT_FILES = ("libonnxruntime.so.1.31.1", "libonnxruntime_providers_shared.so",
             "libonnxruntime_providers_cuda.so")
ARCHIVE = "payload.tar.xz"


def log(msg):
    print(f"[stage] {msg}", flush=True)


def tree_bytes(repo=ROOT):
    """Bytes of what travels with every call: tracked and untracked-not-ignored files."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         cwd=repo, capture_output=True, check=True).stdout
    total = 0
    for f in out.split(b"\0"):
        p = os.path.join(repo, f.decode())
        if f and os.path.isfile(p) and not os.path.islink(p):
            total += os.path.getsize(p)
    return total


def build(target_dir):
    log("cargo build --release --lib --example bench")
    subprocess.run(["cargo", "build", "--release", "--lib", "--example", "bench"], cwd=ROOT, check=True)
    return os.path.join(target_dir, "release")


def stripped_copy(src, dst):
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    subprocess.run(["objcopy", "--strip-debug", src, dst], check=True)
    shutil.copymode(src, dst)


def ort_from_wheel(wheel, dest, keep_sm):
    os.makedirs(dest, exist_ok=True)
    with zipfile.ZipFile(wheel) as z:
        names = {os.path.basename(n): n for n in z.namelist()}
        for f in ORT_FILES:
            if f not in names:
                raise SystemExit(f"stage: {wheel} has no {f} (is it onnxruntime-gpu 1.31.1?)")
            with z.open(names[f]) as src, open(os.path.join(dest, f), "wb") as out:
                shutil.copyfileobj(src, out, 1 << 22)
    cuda = os.path.join(dest, "libonnxruntime_providers_cuda.so")
    if keep_sm:
        with open(cuda, "rb") as f:
            data = f.read()
        pruned, zeroed = fatbin.prune(data, keep_sm)
        with open(cuda, "wb") as f:
            f.write(pruned)
        log(f"CUDA provider: kept sm_{keep_sm} cubins, zeroed {zeroed / 1e6:.1f} MB of others")


def archive(src_dir, out_path, preset):
    """tar + xz (multi-threaded xz when available, else Python's lzma)."""
    log(f"archiving {src_dir} -> {out_path} (xz -{preset})")
    tar_path = out_path[:-3]
    with tarfile.open(tar_path, "w") as t:
        for name in sorted(os.listdir(src_dir)):
            t.add(os.path.join(src_dir, name), arcname=name)
    if shutil.which("xz"):
        subprocess.run(["nice", "xz", f"-{preset}", "-T2", "-f", tar_path], check=True)
    else:
        import lzma
        with open(tar_path, "rb") as f, lzma.open(out_path, "wb", preset=int(preset[0])) as z:
            shutil.copyfileobj(f, z, 1 << 22)
        os.remove(tar_path)


def write_checksums(root):
    """FILES.sha256 at the payload's root: checked after unpacking there."""
    lines = []
    for d, _, files in os.walk(root):
        for f in sorted(files):
            p = os.path.join(d, f)
            lines.append(f"{parts.sha256_file(p)}  {os.path.relpath(p, root)}")
    with open(os.path.join(root, "FILES.sha256"), "w") as fh:
        fh.write("\n".join(sorted(lines, key=lambda l: l[66:])) + "\n")


def cut(out, archive_path, tree):
    for d in os.listdir(out):
        if d.startswith("call"):
            shutil.rmtree(os.path.join(out, d))
    size = parts.budget(tree)
    m = parts.split(archive_path, out, size)
    check(out, tree)
    return m


def check(out, tree):
    """Each call folder plus the working tree must fit one call."""
    calls = sorted(d for d in os.listdir(out) if d.startswith("call"))
    if not calls:
        raise SystemExit(f"stage: no call folders in {out}")
    worst = 0
    for c in calls:
        d = os.path.join(out, c)
        b = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))
        total = b + tree
        worst = max(worst, total)
        log(f"{c}: {b / parts.MIB:.1f} MiB + working tree {tree / parts.MIB:.1f} MiB = "
            f"{total / parts.MIB:.1f} MiB of {parts.CALL_LIMIT / parts.MIB:.0f}")
        if total > parts.CALL_LIMIT:
            raise SystemExit(f"stage: {c} would carry {total / parts.MIB:.1f} MiB > 64 MiB; re-run the "
                             "staging (the working tree grew)")
    return worst


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ort-wheel", help="onnxruntime-gpu 1.31.1 wheel (pip download onnxruntime-gpu==1.31.1)")
    p.add_argument("--packs", nargs="*", default=[], help="model packs to carry without weights")
    p.add_argument("--keep-sm", type=int, default=90,
                   help="GPU architecture whose cubins are kept (90: H100/H200); 0 keeps all")
    p.add_argument("--out", default=os.path.join(ROOT, ".gpu-check"))
    p.add_argument("--cache", help="download cache (default OUT/cache)")
    p.add_argument("--xz", default="9e", help="xz preset (default 9e)")
    p.add_argument("--skip-build", action="store_true", help="use the existing release build")
    p.add_argument("--check", action="store_true", help="only check the existing call folders")
    p.add_argument("--recut", action="store_true",
                   help="cut the existing archive again for the working tree as it is now")
    a = p.parse_args(argv)
    out = os.path.abspath(a.out)
    tree = tree_bytes()
    if a.check:
        check(out, tree)
        return 0
    if a.recut:
        m = cut(out, os.path.join(out, ARCHIVE), tree)
        log(f"{ARCHIVE}: {len(m['parts'])} calls")
        return 0
    if not a.ort_wheel or not a.packs:
        p.error("--ort-wheel and --packs are required")
    for pack in a.packs:
        if not os.path.isfile(os.path.join(pack, "manifest.json")):
            p.error(f"{pack}: not a model pack (no manifest.json)")
    start = time.time()
    cache = os.path.abspath(a.cache or os.path.join(out, "cache"))
    payload = os.path.join(out, "payload")
    shutil.rmtree(payload, ignore_errors=True)
    os.makedirs(payload)
    release = os.path.join(ROOT, "target", "release") if a.skip_build else build(os.path.join(ROOT, "target"))
    stripped_copy(os.path.join(release, "examples", "bench"), os.path.join(payload, "bin", "bench"))
    plugin = os.path.join(payload, "gst", "plugins", "libgstdawn.so")
    stripped_copy(os.path.join(release, "libgstdawn.so"), plugin)
    log("GStreamer from Debian packages")
    sharedlibs.collect(os.path.join(payload, "gst"), os.path.join(cache, "apt"),
                       also_resolve=[os.path.join(release, "libgstdawn.so")])
    gst = os.path.join(payload, "gst")
    carried = [os.path.join(d, f) for sub in ("bin", "libexec", "plugins", "lib")
               for d, _, fs in os.walk(os.path.join(gst, sub)) for f in fs]
    carried.append(os.path.join(payload, "bin", "bench"))
    lost = sharedlibs.unresolved(carried, [os.path.join(gst, "lib")])
    if lost:
        raise SystemExit("stage: libraries not carried: " + ", ".join(f"{s} (for {os.path.basename(f)})" for f, s in lost))
    log("ONNX Runtime (CUDA) from the wheel")
    ort_from_wheel(a.ort_wheel, os.path.join(payload, "ort"), a.keep_sm)
    log("model packs without their weights")
    subprocess.run([sys.executable, os.path.join(os.path.dirname(__file__), "weights.py"), "strip",
                    "--out", os.path.join(payload, "packs-store"), *a.packs], check=True)
    with open(os.path.join(payload, "STAGED.json"), "w") as f:
        json.dump({"keep_sm": a.keep_sm, "packs": [os.path.basename(os.path.normpath(x)) for x in a.packs],
                   "commit": subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                                            text=True).stdout.strip()}, f, indent=1)
    write_checksums(payload)
    arch = os.path.join(out, ARCHIVE)
    archive(payload, arch, a.xz)
    m = cut(out, arch, tree)
    log(f"{ARCHIVE}: {m['size'] / parts.MIB:.1f} MiB in {len(m['parts'])} calls "
        f"(sha256 {m['sha256'][:16]}...), staged in {time.time() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
