"""GStreamer for a machine without it: the files the plugin and a few tools need, taken from
Debian packages (`apt-get download` + `dpkg-deb -x`, never installed), with every shared library
they link, into one private folder:

    gst/bin/      gst-launch-1.0, gst-inspect-1.0
    gst/libexec/  gst-plugin-scanner
    gst/lib/      the shared libraries (each under its soname)
    gst/plugins/  the GStreamer plugins (and ours)

The C runtime (glibc, libgcc_s, libstdc++) is not carried: every Linux with Python has a
compatible or newer one. `unresolved` checks, from the ELF headers alone, that every library
each carried file needs is in `gst/lib` or among those.
"""

import os
import re
import shutil
import subprocess

# Provided by the target system (glibc and the compiler runtime).
BASE_SONAMES = {
    "libc.so.6", "libm.so.6", "libdl.so.2", "libpthread.so.0", "librt.so.1",
    "ld-linux-x86-64.so.2", "libresolv.so.2", "libutil.so.1", "libgcc_s.so.1",
    "libstdc++.so.6", "linux-vdso.so.1",
}

TRIPLET = "x86_64-linux-gnu"
GST_PLUGIN_DIR = f"/usr/lib/{TRIPLET}/gstreamer-1.0"
TOOLS = ["/usr/bin/gst-launch-1.0", "/usr/bin/gst-inspect-1.0"]
SCANNER = f"/usr/lib/{TRIPLET}/gstreamer1.0/gstreamer-1.0/gst-plugin-scanner"
# What the element smoke pipeline uses: filesrc/fakesink/queue/tee, wavparse, audioconvert,
# audioresample, audiotestsrc.
PLUGINS = ["coreelements", "wavparse", "audioconvert", "audioresample", "audiotestsrc"]


class LibError(Exception):
    pass


def _run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        raise LibError(f"{' '.join(cmd)} failed: {r.stderr.strip() or r.stdout.strip()}")
    return r.stdout


def needed(elf):
    """Sonames an ELF file names as NEEDED."""
    out = _run(["readelf", "-dW", elf])
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out)


def resolved(elf):
    """soname -> path of every library `elf` loads here (transitively), per ldd."""
    libs = {}
    for line in _run(["ldd", elf]).splitlines():
        m = re.match(r"\s*(\S+) => (\S+) \(", line)
        if m and m.group(2) != "not":
            libs[m.group(1)] = m.group(2)
        elif "not found" in line:
            raise LibError(f"{elf}: {line.strip()} on this machine; install it first")
    return libs


def package_of(path):
    """The Debian package that installed `path` (merged /usr aware)."""
    real = os.path.realpath(path)
    candidates = [path, real]
    for p in (path, real):
        if p.startswith("/usr/lib/"):
            candidates.append(p[len("/usr"):])
        elif p.startswith("/lib/"):
            candidates.append("/usr" + p)
    for c in candidates:
        r = subprocess.run(["dpkg", "-S", c], capture_output=True, text=True)
        if r.returncode == 0:
            return r.stdout.split(":")[0].strip()
    raise LibError(f"no Debian package owns {path} (dpkg -S)")


def download(packages, cache):
    """Downloads the .deb files (cached) and unpacks each into cache/root; returns that root."""
    debs = os.path.join(cache, "debs")
    root = os.path.join(cache, "root")
    os.makedirs(debs, exist_ok=True)
    os.makedirs(root, exist_ok=True)
    have = {f.split("_")[0] for f in os.listdir(debs) if f.endswith(".deb")}
    todo = sorted(set(packages) - have)
    if todo:
        _run(["apt-get", "download", *todo], cwd=debs)
    for f in sorted(os.listdir(debs)):
        if f.endswith(".deb") and f.split("_")[0] in packages:
            _run(["dpkg-deb", "-x", os.path.join(debs, f), root])
    return root


def _from_root(root, system_path):
    """The unpacked copy of a system file (merged /usr aware)."""
    real = os.path.realpath(system_path)
    for p in (system_path, real, real.replace("/usr/lib/", "/lib/", 1), real.replace("/lib/", "/usr/lib/", 1)):
        cand = os.path.join(root, p.lstrip("/"))
        if os.path.exists(cand):
            return os.path.realpath(cand)
    raise LibError(f"{system_path}: not in the unpacked packages")


def collect(dest, cache, also_resolve=()):
    """Fills dest/{bin,libexec,lib,plugins}; returns the list of files written. The libraries
    of `also_resolve` (e.g. our own plugin, copied by the caller) are collected too."""
    plugins = [os.path.join(GST_PLUGIN_DIR, f"libgst{p}.so") for p in PLUGINS]
    system_files = TOOLS + [SCANNER] + plugins
    for f in system_files:
        if not os.path.exists(f):
            raise LibError(f"{f} missing here; run tools/setup.sh (it installs GStreamer)")
    libs = {}
    for elf in system_files + list(also_resolve):
        libs.update({k: v for k, v in resolved(elf).items() if k not in BASE_SONAMES})
    packages = {package_of(f) for f in system_files} | {package_of(p) for p in libs.values()}
    root = download(packages, cache)
    written = []

    def put(src, sub, name=None):
        d = os.path.join(dest, sub)
        os.makedirs(d, exist_ok=True)
        target = os.path.join(d, name or os.path.basename(src))
        shutil.copyfile(src, target)
        shutil.copymode(src, target)
        written.append(target)

    for t in TOOLS:
        put(_from_root(root, t), "bin", os.path.basename(t))
    put(_from_root(root, SCANNER), "libexec", "gst-plugin-scanner")
    for p in plugins:
        put(_from_root(root, p), "plugins", os.path.basename(p))
    for soname, path in sorted(libs.items()):
        put(_from_root(root, path), "lib", soname)
    return written


def unresolved(files, lib_dirs, base=BASE_SONAMES):
    """(file, soname) for every NEEDED library of `files` (and of the libraries they pull in)
    found neither in `lib_dirs` nor in `base`."""
    available = {}
    for d in lib_dirs:
        if os.path.isdir(d):
            for f in os.listdir(d):
                available.setdefault(f, os.path.join(d, f))
    missing, seen, todo = [], set(), list(files)
    while todo:
        f = todo.pop()
        if f in seen:
            continue
        seen.add(f)
        for soname in needed(f):
            if soname in base:
                continue
            if soname in available:
                todo.append(available[soname])
            else:
                missing.append((f, soname))
    return missing
