"""Apply a retraining rule's steps (research/unet_sharp/rules/) to scores already computed.

    python research/unet_sharp/rule_check.py stepa BASELINE_DIR CANDIDATE_DIR
    python research/unet_sharp/rule_check.py stepb METRICS_JSON [--liver 0.9420 --tumor 0.4951]

``stepa`` compares two folders that ``default_weights.sh stepa`` wrote
(``data/stepA-NAME``: ``validation.json`` from ``lesion_prob_sweep.py --json``, ``real.json``
from ``real_examples.py`` and the ``liverseg predict`` report of the TotalSegmentator
example in ``real/``) by the conditions of the v6mix-v10mix rules: on validation, liver
Dice per case falls by at most 0.005, tumor Dice per case does not fall, false-lesion
volume in tumor-free cases does not rise; on the real TotalSegmentator example, liver Dice
falls by at most 0.01 and tumor volume (all false: it has no tumor) does not rise; on the
dcmqi series, liver Dice falls by at most 0.01. ``stepb`` checks a ``liverseg evaluate
--json`` file of the held-out 1.1.0 set against issue 22's gate. Each prints one line per
condition and exits 0 when all hold, 1 when one fails, 2 on missing input.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

THRESHOLD = "0.3"  # version 5's min_lesion_prob: the row of validation.json a rule reads
LIVER_GATE, TUMOR_GATE = 0.9420, 0.4951  # issue 22's held-out 1.1.0 bar


@dataclass(frozen=True)
class Condition:
    """One line of a rule: ``value`` must not fall below ``bound`` (or rise above it)."""

    what: str
    value: float
    bound: float
    at_most: bool = False  # the value may not exceed the bound

    @property
    def holds(self) -> bool:
        # a rounding margin: the scores are printed, and compared, to 4 decimals
        if self.at_most:
            return self.value <= self.bound + 1e-9
        return self.value >= self.bound - 1e-9

    def line(self) -> str:
        sign = "<=" if self.at_most else ">="
        verdict = "holds" if self.holds else "FAILS"
        return f"{verdict}: {self.what} {self.value:.4f} {sign} {self.bound:.4f}"


def scores_of(folder: Path) -> dict[str, float]:
    """The numbers step A reads from one ``data/stepA-NAME`` folder."""
    validation = json.loads((folder / "validation.json").read_text())["thresholds"][THRESHOLD]
    real = json.loads((folder / "real.json").read_text())
    report = json.loads((folder / "real" / "totalsegmentator_example.json").read_text())
    return {
        "validation_liver": validation["liver_dice"],
        "validation_tumor": validation["tumor_dice"],
        "validation_false_ml": validation["false_lesions_tumor_free_ml"],
        "real_liver": real["totalsegmentator_example"]["liver_dice"],
        "real_tumor_ml": report["tumor_volume_ml"],
        "dcmqi_liver": real["dcmqi_ct_3slice"]["liver_dice"],
    }


def step_a(base: dict[str, float], cand: dict[str, float]) -> list[Condition]:
    """The step A conditions of rules/v10.md, candidate against baseline."""
    return [
        Condition("validation liver Dice per case", cand["validation_liver"],
                  base["validation_liver"] - 0.005),
        Condition("validation tumor Dice per case", cand["validation_tumor"],
                  base["validation_tumor"]),
        Condition("validation false lesions in tumor-free cases (ml)",
                  cand["validation_false_ml"], base["validation_false_ml"], at_most=True),
        Condition("real TotalSegmentator example liver Dice", cand["real_liver"],
                  base["real_liver"] - 0.01),
        Condition("real TotalSegmentator example tumor (ml, all false)", cand["real_tumor_ml"],
                  base["real_tumor_ml"], at_most=True),
        Condition("real dcmqi liver Dice", cand["dcmqi_liver"], base["dcmqi_liver"] - 0.01),
    ]


def step_b(metrics: dict, liver: float, tumor: float) -> list[Condition]:
    """Issue 22's held-out gate on a ``liverseg evaluate --json`` document."""
    summary = metrics["summary"]
    return [Condition("held-out liver Dice per case", summary["liver"]["dice_per_case"], liver),
            Condition("held-out tumor Dice per case", summary["tumor"]["dice_per_case"], tumor)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    steps = parser.add_subparsers(dest="step", required=True)
    a = steps.add_parser("stepa")
    a.add_argument("baseline", type=Path)
    a.add_argument("candidate", type=Path)
    b = steps.add_parser("stepb")
    b.add_argument("metrics", type=Path)
    b.add_argument("--liver", type=float, default=LIVER_GATE)
    b.add_argument("--tumor", type=float, default=TUMOR_GATE)
    args = parser.parse_args(argv)
    try:
        if args.step == "stepa":
            conditions = step_a(scores_of(args.baseline), scores_of(args.candidate))
        else:
            conditions = step_b(json.loads(args.metrics.read_text()), args.liver, args.tumor)
    except (OSError, KeyError, ValueError) as error:
        print(f"Error: {type(error).__name__}: {error}", file=sys.stderr)
        return 2
    for condition in conditions:
        print(condition.line())
    passed = all(c.holds for c in conditions)
    print("qualifies" if passed else "does not qualify")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
