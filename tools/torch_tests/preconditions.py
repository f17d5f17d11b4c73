"""What the torch suite needs; each helper raises AssertionError naming the missing piece."""

import os


def torch():
    try:
        import torch as t
    except ImportError as e:
        raise AssertionError(f"the torch suite needs torch ({e}): pip install -e '.[export]'")
    return t


def dawn_src():
    d = os.environ.get("DAWN_SRC")
    if not d:
        raise AssertionError("set DAWN_SRC to a DAWN-pytorch checkout (git clone "
                             "https://github.com/Hanbo-Cheng/DAWN-pytorch)")
    if not os.path.isdir(os.path.join(d, "DM_3")):
        raise AssertionError(f"DAWN_SRC={d} is not a DAWN-pytorch checkout (no DM_3/)")
    return d
