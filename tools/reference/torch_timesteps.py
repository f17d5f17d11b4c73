"""Writes the DDIM timesteps torch visits for every step count (needs torch).

    python -m tools.reference.torch_timesteps tests/data/torch_ddim_timesteps.u16

For m = 1 .. 999 in order: the m + 1 values of ``torch.linspace(0., 1000, steps=m + 2)[:-1].int()``
(upstream's ``ddim_sample``, float32 on the CPU), increasing, as little-endian uint16. The engine's
unit test (src/engine/sampler.rs) and tools/tests/test_reference.py compare their timesteps with
this table.
"""

import argparse
import sys

TRAIN_TIMESTEPS = 1000
MAX_STEPS = TRAIN_TIMESTEPS - 1


def table():
    import numpy as np
    import torch

    rows = [torch.linspace(0.0, TRAIN_TIMESTEPS, steps=m + 2)[:-1].int().numpy()
            for m in range(1, MAX_STEPS + 1)]
    return np.concatenate(rows).astype("<u2"), torch.__version__


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", help="file to write (tests/data/torch_ddim_timesteps.u16)")
    args = ap.parse_args(argv)
    values, version = table()
    values.tofile(args.out)
    print(f"{args.out}: {values.size} timesteps for 1..{MAX_STEPS} steps, torch {version}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
