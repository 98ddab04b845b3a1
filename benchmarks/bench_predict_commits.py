"""``liverseg predict`` now against an older commit, in one run on one host (issue 24).

The older commit is exported (``git archive``) into a temporary folder and installed,
without dependencies, into a virtual environment that reads this one's packages (not its editable
install of the checkout); the
current checkout runs from the environment this script runs in. Each scan is then
segmented by both, alternating, ``--repeats`` times, as a user would run it (a fresh
``python -m keras_liverseg.cli.main predict SCAN -o OUT --report R`` process, default
model and options). Per scan and commit it prints the best whole-process wall time, the
report's ``timing_s`` (``predict``, ``postprocess``, ``total``), the slices read and the
precision, and, when the scan is a phantom with its ``segmentation-<i>.nii.gz`` beside it,
liver and tumor Dice against that truth (LiTS: liver = liver + tumor).

``--new-args`` passes more options to the current checkout's runs (``--new-args="--runtime
onnx"``), ``--old-args`` to the older commit's; ``--warm-up`` runs each commit once per scan
before the timed runs (so that an ONNX graph is exported and cached first).

Usage::

    liverseg sample-data -o data/parity --cases 4 --seed 2 --size 512 512 100
    python benchmarks/bench_predict_commits.py --old 63d7459 data/parity/volume-*.nii.gz
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from keras_liverseg.metrics.overlap import dice

REPO = Path(__file__).resolve().parents[1]


def install_commit(rev: str, folder: Path) -> Path:
    """Export ``rev`` into ``folder/src`` and install it into ``folder/venv``; its python."""
    source = folder / "src"
    source.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(source)], input=archive, check=True)
    venv = folder / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    # this environment's packages, as plain paths: their .pth files do not run, so the
    # checkout's editable install (a .pth hook) does not shadow the old commit
    site_dir = subprocess.run([str(python), "-c", "import sysconfig; "
                               "print(sysconfig.get_paths()['purelib'])"], check=True,
                              capture_output=True, text=True).stdout.strip()
    import site

    Path(site_dir, "_shared_packages.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps",
                    "--no-build-isolation", str(source)], check=True)
    where = subprocess.run([str(python), "-c", "import keras_liverseg; "
                            "print(keras_liverseg.__file__)"], check=True, cwd=folder,
                           capture_output=True, text=True).stdout.strip()
    if str(REPO) in where:
        raise RuntimeError(f"the old commit's environment imports the checkout: {where}")
    return python


def predict(python: Path, scan: Path, work: Path, label: str, extra: list[str]) -> dict:
    """One ``liverseg predict`` process (``extra``: more options); its wall time and report."""
    out, report = work / f"{label}.nii.gz", work / f"{label}.json"
    command = [str(python), "-m", "keras_liverseg.cli.main", "predict", str(scan), "-o",
               str(out), "--report", str(report), "--overwrite", "--quiet", *extra]
    tick = time.perf_counter()
    # run outside the checkout: python -m puts the working folder first on sys.path
    subprocess.run(command, check=True, cwd=work,
                   env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    wall = time.perf_counter() - tick
    return {"wall_s": wall, "report": json.loads(report.read_text()), "labels": out}


def scores(labels: Path, scan: Path) -> dict | None:
    import nibabel as nib

    truth_path = scan.with_name(scan.name.replace("volume-", "segmentation-"))
    if truth_path == scan or not truth_path.is_file():
        return None
    truth = np.asarray(nib.load(truth_path).dataobj)
    predicted = np.asarray(nib.load(labels).dataobj)
    return {"liver_dice": round(dice(predicted >= 1, truth >= 1), 4),
            "tumor_dice": round(dice(predicted == 2, truth == 2), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scans", nargs="+", type=Path)
    parser.add_argument("--old", required=True, help="the older commit (any git revision)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    parser.add_argument("--new-args", default="", help="more predict options for this checkout")
    parser.add_argument("--old-args", default="", help="more predict options for --old")
    parser.add_argument("--warm-up", action="store_true",
                        help="run each commit once per scan before timing it")
    args = parser.parse_args()
    extra = {"old": shlex.split(args.old_args), "new": shlex.split(args.new_args)}

    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                          check=True, capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--",
                            "keras_liverseg", "cli"], capture_output=True, text=True).stdout
    from keras_liverseg.inference.precision import cpu_name

    print(json.dumps({"host": cpu_name(),
                      "cores": os.cpu_count(), "new": head + (" (modified)" if dirty else ""),
                      "old": args.old, "new_args": args.new_args, "old_args": args.old_args}))
    work = Path(tempfile.mkdtemp(prefix="bench_commits_"))
    pythons = {"old": install_commit(args.old, work / "old"), "new": Path(sys.executable)}
    # pip compiled the old commit's modules; compile the checkout's too (an editable install
    # is not, and PYTHONDONTWRITEBYTECODE=1 would make every run compile them again)
    subprocess.run([sys.executable, "-m", "compileall", "-q", "keras_liverseg", "cli"],
                   cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    args.scans = [scan.resolve() for scan in args.scans]
    rows = []
    for scan in args.scans:
        best: dict[str, dict] = {}
        if args.warm_up:
            for which, python in pythons.items():
                predict(python, scan, work, f"{which}-warm-up", extra[which])
        for repeat in range(args.repeats):
            for which, python in pythons.items():
                run = predict(python, scan, work, f"{which}-{repeat}", extra[which])
                if which not in best or run["wall_s"] < best[which]["wall_s"]:
                    best[which] = run
        for which, run in best.items():
            report = run["report"]
            row = {"scan": scan.name, "commit": which, "wall_s": round(run["wall_s"], 2),
                   "timing_s": {k: report["timing_s"].get(k) for k in
                                ("load", "model_load", "predict", "postprocess", "total")},
                   "slices_read": report.get("slices_read"),
                   "precision": report["model"].get("precision", "float32"),
                   "runtime": report["model"].get("runtime", "keras"),
                   "keras_backend": report.get("versions", {}).get("keras_backend"),
                   "truth": scores(run["labels"], scan)}
            rows.append(row)
            print(json.dumps(row), flush=True)
        ratio = best["new"]["wall_s"] / best["old"]["wall_s"]
        print(f"{scan.name}: whole process new / old = {ratio:.2f}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
