"""Provenance helpers: sha256 of checkpoint files, git commit of the DAWN checkout. Torch-free."""

import hashlib
import os
import subprocess

UPSTREAM_REPO = "Hanbo-Cheng/DAWN-pytorch"


def sha256_file(path, chunk=1 << 20):
    """``sha256:<hex>`` of a file, streamed (checkpoints are hundreds of MB)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(chunk)
            if not b:
                break
            h.update(b)
    return "sha256:" + h.hexdigest()


def checkpoint_digests(paths, base=None):
    """{display name: sha256} for the given files; names are relative to ``base`` when given
    (e.g. ``pbnet_seperate/pose/checkpoint_40000.pth.tar``), else the basename."""
    out = {}
    for p in paths:
        name = os.path.relpath(p, base) if base else os.path.basename(p)
        out[name.replace(os.sep, "/")] = sha256_file(p)
    return out


# The upstream paths the exporter imports from; local changes elsewhere (e.g. absent 3DDFA weight
# files) do not affect the export.
USED_PATHS = ("DM_3", "LFG", "PBnet", "sync_batchnorm", "config", "filter_fourier.py")


def git_commit(path, pathspec=USED_PATHS):
    """(short commit, dirty flag) of the git checkout at ``path``, or (None, False) if it is not a
    git work tree or git is unavailable. Dirty means tracked files under ``pathspec`` differ."""
    try:
        top = subprocess.run(["git", "-C", path, "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=30)
        if top.returncode != 0:
            return None, False
        commit = top.stdout.strip()
        st = subprocess.run(["git", "-C", path, "status", "--porcelain", "--untracked-files=no", "--",
                             *pathspec],
                            capture_output=True, text=True, timeout=60)
        return commit, bool(st.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        return None, False


def source_string(dawn_src):
    """``Hanbo-Cheng/DAWN-pytorch <commit>`` (``+modified`` when the work tree differs from the
    commit), or a note that the checkout is not a git repository."""
    commit, dirty = git_commit(dawn_src)
    if commit is None:
        return f"{UPSTREAM_REPO} (unknown commit: {os.path.abspath(dawn_src)} is not a git checkout)"
    return f"{UPSTREAM_REPO} {commit}" + (" +modified" if dirty else "")
