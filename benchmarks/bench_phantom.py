"""Time synthetic-phantom generation (and optionally NIfTI writing); report peak memory.

Run it as::

    python benchmarks/bench_phantom.py                      # 5 cases of 512 x 512 x 100
    python benchmarks/bench_phantom.py --cases 3 --size 256 256 64 --write /tmp/ph

It prints the time of each case (generation only, then writing when ``--write`` is given),
the mean and the process's peak resident memory (``ru_maxrss``).
"""

from __future__ import annotations

import argparse
import platform
import resource
import tempfile
import time

import numpy as np

from keras_liverseg.phantom import case_seed, generate_case
from keras_liverseg.phantom.dataset import write_case


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, nargs=3, default=(512, 512, 100))
    parser.add_argument("--write", metavar="DIR", help="also write each case as NIfTI here")
    parser.add_argument("--tmp-write", action="store_true", help="write to a temporary folder")
    args = parser.parse_args()
    shape = tuple(args.size)
    print(f"python {platform.python_version()}, numpy {np.__version__}, {platform.machine()}")
    out = args.write or (tempfile.mkdtemp(prefix="bench_phantom_") if args.tmp_write else None)
    gen, wrt = [], []
    for i in range(args.cases):
        seed = case_seed(args.seed, i)
        t0 = time.perf_counter()
        case = generate_case(seed, shape)
        t1 = time.perf_counter()
        gen.append(t1 - t0)
        line = (f"case {i}: generate {t1 - t0:5.2f} s  ({case.meta['phase']}, "
                f"spacing {case.meta['spacing']}, {len(case.meta['lesions'])} lesions)")
        if out:
            write_case(case, out, i)
            wrt.append(time.perf_counter() - t1)
            line += f"  write {wrt[-1]:5.2f} s"
        print(line, flush=True)
        del case
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"shape {shape}: mean generate {np.mean(gen):.2f} s/case (min {np.min(gen):.2f}, "
          f"max {np.max(gen):.2f})" + (f", mean write {np.mean(wrt):.2f} s" if wrt else ""))
    print(f"peak RSS {rss_mb:.0f} MiB")


if __name__ == "__main__":
    main()
