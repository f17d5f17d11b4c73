"""One archive carried to the GPU machine in parts, one folder per call, checked by sha256.

Each call to the GPU machine carries at most 64 MiB, the repository's working tree included,
and files survive on the machine only while it stays warm between calls. `split` cuts the
archive into parts that fit, one folder per call (`call1/`, `call2/`, ...), each with the full
manifest; `receive` (on the GPU machine) checks a call folder's parts and moves them into a work
folder; `join` checks that every part is there and reassembles the archive, checking its sha256.
Standard library only: it runs with whatever Python the GPU machine has.
"""

import hashlib
import json
import os
import shutil

MIB = 1 << 20
CALL_LIMIT = 64 * MIB
MANIFEST = "parts.json"


class PartsError(Exception):
    pass


def sha256_file(path, block=4 * MIB):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(block)
            if not b:
                return h.hexdigest()
            h.update(b)


def budget(tree_bytes, margin=2 * MIB, limit=CALL_LIMIT):
    """Bytes of parts one call can carry next to the working tree."""
    b = limit - tree_bytes - margin
    if b < MIB:
        raise PartsError(f"the working tree ({tree_bytes / MIB:.1f} MiB) leaves no room in a "
                         f"{limit / MIB:.0f} MiB call")
    return b


def split(archive, out_dir, max_part_bytes):
    """Cuts `archive` into as few call folders under `out_dir` as parts of at most
    `max_part_bytes` allow, parts of equal size (so every call keeps the same room for a
    growing working tree); returns the manifest."""
    size = os.path.getsize(archive)
    n = max(1, -(-size // max_part_bytes))
    part_bytes = -(-size // n)
    manifest = {
        "archive": os.path.basename(archive),
        "size": size,
        "sha256": sha256_file(archive),
        "part_bytes": part_bytes,
        "parts": [],
    }
    with open(archive, "rb") as f:
        for i in range(n):
            call = os.path.join(out_dir, f"call{i + 1}")
            os.makedirs(call, exist_ok=True)
            name = f"part{i + 1:02d}"
            data = f.read(part_bytes)
            with open(os.path.join(call, name), "wb") as p:
                p.write(data)
            manifest["parts"].append({
                "name": name,
                "call": f"call{i + 1}",
                "size": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
            })
    for part in manifest["parts"]:
        with open(os.path.join(out_dir, part["call"], MANIFEST), "w") as m:
            json.dump(manifest, m, indent=1)
    return manifest


def _manifest(folder):
    path = os.path.join(folder, MANIFEST)
    if not os.path.isfile(path):
        raise PartsError(f"{folder}: no {MANIFEST} (not a staged call folder)")
    with open(path) as f:
        return json.load(f)


def receive(call_dir, work):
    """Checks the parts in `call_dir` and moves them to `work`; returns the names of parts still
    missing there."""
    m = _manifest(call_dir)
    os.makedirs(work, exist_ok=True)
    known = os.path.join(work, MANIFEST)
    if os.path.isfile(known) and _manifest(work)["sha256"] != m["sha256"]:
        # Parts of another staging: start over rather than mix them.
        for p in _manifest(work)["parts"]:
            if os.path.exists(os.path.join(work, p["name"])):
                os.remove(os.path.join(work, p["name"]))
    shutil.copyfile(os.path.join(call_dir, MANIFEST), known)
    for p in m["parts"]:
        src = os.path.join(call_dir, p["name"])
        if not os.path.exists(src):
            continue
        if os.path.getsize(src) != p["size"] or sha256_file(src) != p["sha256"]:
            raise PartsError(f"{src}: size or sha256 differs from the manifest (damaged in transfer?)")
        shutil.copyfile(src, os.path.join(work, p["name"]))
    return missing(work)


def missing(work):
    m = _manifest(work)
    return [p["name"] for p in m["parts"]
            if not os.path.isfile(os.path.join(work, p["name"]))
            or os.path.getsize(os.path.join(work, p["name"])) != p["size"]]


def join(work, out_path):
    """Reassembles the archive from the parts in `work`, checking every sha256."""
    m = _manifest(work)
    lost = missing(work)
    if lost:
        calls = sorted({p["call"] for p in m["parts"] if p["name"] in lost})
        raise PartsError(f"parts {', '.join(lost)} are not on this machine; run the calls with "
                         f"{', '.join(calls)} first (files last only while the machine stays warm)")
    with open(out_path, "wb") as out:
        for p in m["parts"]:
            path = os.path.join(work, p["name"])
            if sha256_file(path) != p["sha256"]:
                raise PartsError(f"{path}: sha256 differs from the manifest")
            with open(path, "rb") as f:
                shutil.copyfileobj(f, out, 4 * MIB)
    got = sha256_file(out_path)
    if got != m["sha256"]:
        raise PartsError(f"{out_path}: reassembled sha256 {got} != staged {m['sha256']}")
    return m
