"""Render evaluation results as a text table, CSV or JSON (strings only; no file I/O).

Text and CSV have one row per case and class, then summary rows per class: ``mean``, ``std``
(population), ``n`` (cases where the metric is defined) and ``global`` (LiTS "Dice global"
in the Dice column). "Dice per case" is the ``mean`` row's Dice. Undefined values print as
``nan`` in text and CSV and are ``null`` in JSON.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from typing import Any

from keras_liverseg.metrics.evaluate import METRICS, CaseResult, ClassSummary

__all__ = ["CSV_COLUMNS", "to_csv", "to_json", "text_case_rows", "text_header", "text_summary"]

_DISTANCES = {"assd", "mssd", "hd95"}
_TEXT_NAMES = {
    "dice": "dice",
    "jaccard": "jaccard",
    "voe": "voe",
    "rvd": "rvd",
    "assd": "assd_mm",
    "mssd": "mssd_mm",
    "hd95": "hd95_mm",
    "surface_dice": "sdice",
}
_WIDTH = 9
_CSV_METRIC_COLUMNS = {
    m: "surface_dice" if m == "surface_dice" else _TEXT_NAMES[m] for m in METRICS
}

CSV_COLUMNS = (
    "row",
    "case",
    "class",
    *_CSV_METRIC_COLUMNS.values(),
    "tolerance_mm",
    "gt_volume_ml",
    "pred_volume_ml",
    "gt_voxels",
    "pred_voxels",
    "overlap_voxels",
    "resampled",
    "pred",
    "gt",
)
"""Columns of :func:`to_csv`; ``row`` is ``case``, ``mean``, ``std``, ``n`` or ``global``."""


def _format(metric: str, value: float, signed: bool = True) -> str:
    if math.isnan(value):
        return "nan"
    if metric in _DISTANCES:
        return f"{value:.2f}"
    if metric == "rvd" and signed:
        return f"{value:+.4f}"
    return f"{value:.4f}"


def _cells(values: Sequence[str]) -> str:
    return " ".join(f"{v:>{_WIDTH}}" for v in values)


def text_header(case_width: int, tolerance: float) -> str:
    """The header line of the text table (``sdice`` is surface Dice at ``tolerance`` mm)."""
    names = [_TEXT_NAMES[m] for m in METRICS]
    names[METRICS.index("surface_dice")] = f"sdice@{tolerance:g}mm"
    return f"{'case':<{case_width}}  {'class':<6}" + " " + _cells([*names, "gt_ml", "pred_ml"])


def text_case_rows(result: CaseResult, case_width: int) -> list[str]:
    """One text line per class of ``result``, aligned with :func:`text_header`."""
    lines = []
    for name, item in result.classes.items():
        values = [_format(m, item.metrics[m]) for m in METRICS]
        values += [f"{item.gt_volume_ml:.1f}", f"{item.pred_volume_ml:.1f}"]
        lines.append(f"{result.case:<{case_width}}  {name:<6} " + _cells(values))
    return lines


def text_summary(summaries: dict[str, ClassSummary], case_width: int) -> list[str]:
    """Summary lines: mean / std / n per class and metric, then Dice per case and global."""
    lines = []
    for name, summary in summaries.items():
        rows = {
            "mean": [_format(m, summary.metrics[m].mean) for m in METRICS],
            "std": [_format(m, summary.metrics[m].std, signed=False) for m in METRICS],
            "n": [str(summary.metrics[m].n) for m in METRICS],
        }
        for label, values in rows.items():
            lines.append(f"{label:<{case_width}}  {name:<6} " + _cells(values))
    lines.append("")
    for name, summary in summaries.items():
        cases = f"{summary.n_cases} case" + ("" if summary.n_cases == 1 else "s")
        lines.append(
            f"{name}: Dice per case {_format('dice', summary.dice_per_case)}, "
            f"Dice global {_format('dice', summary.dice_global)} ({cases})"
        )
        excluded = {m: s.excluded for m, s in summary.metrics.items() if s.excluded}
        if excluded:
            detail = ", ".join(f"{_TEXT_NAMES[m]} {k}" for m, k in excluded.items())
            lines.append(
                f"{name}: cases left out where a metric is undefined (one mask empty): {detail}"
            )
    return lines


def _case_csv_rows(result: CaseResult, tolerance: float) -> list[dict[str, Any]]:
    rows = []
    for name, item in result.classes.items():
        row: dict[str, Any] = {"row": "case", "case": result.case, "class": name}
        for m, column in _CSV_METRIC_COLUMNS.items():
            row[column] = _csv_number(item.metrics[m])
        row.update(
            tolerance_mm=tolerance,
            gt_volume_ml=round(item.gt_volume_ml, 4),
            pred_volume_ml=round(item.pred_volume_ml, 4),
            gt_voxels=item.counts.gt,
            pred_voxels=item.counts.pred,
            overlap_voxels=item.counts.intersection,
            resampled=int(result.resampled),
            pred="" if result.pred is None else str(result.pred),
            gt="" if result.gt is None else str(result.gt),
        )
        rows.append(row)
    return rows


def _csv_number(value: float) -> str | float:
    return "nan" if math.isnan(value) else repr(float(value))


def to_csv(
    results: Sequence[CaseResult], summaries: dict[str, ClassSummary], tolerance: float
) -> str:
    """The CSV text: one row per case and class, then the summary rows (see the module doc)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, restval="", lineterminator="\n")
    writer.writeheader()
    for result in results:
        writer.writerows(_case_csv_rows(result, tolerance))
    for name, summary in summaries.items():
        for stat in ("mean", "std", "n"):
            row: dict[str, Any] = {"row": stat, "class": name}
            for m, column in _CSV_METRIC_COLUMNS.items():
                value = getattr(summary.metrics[m], stat)
                row[column] = value if stat == "n" else _csv_number(value)
            writer.writerow(row)
        writer.writerow({"row": "global", "class": name, "dice": _csv_number(summary.dice_global)})
    return buffer.getvalue()


def _json_number(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def to_json(
    results: Sequence[CaseResult],
    summaries: dict[str, ClassSummary],
    settings: dict[str, Any] | None = None,
) -> str:
    """The JSON text: ``settings``, ``cases`` (per case and class) and ``summary`` per class."""
    document = {
        "settings": settings or {},
        "cases": [
            {
                "case": r.case,
                "pred": None if r.pred is None else str(r.pred),
                "gt": None if r.gt is None else str(r.gt),
                "spacing_mm": list(r.spacing),
                "resampled": r.resampled,
                "classes": {
                    name: {
                        **{m: _json_number(item.metrics[m]) for m in METRICS},
                        "gt_volume_ml": item.gt_volume_ml,
                        "pred_volume_ml": item.pred_volume_ml,
                        "gt_voxels": item.counts.gt,
                        "pred_voxels": item.counts.pred,
                        "overlap_voxels": item.counts.intersection,
                    }
                    for name, item in r.classes.items()
                },
            }
            for r in results
        ],
        "summary": {
            name: {
                "n_cases": s.n_cases,
                "dice_per_case": _json_number(s.dice_per_case),
                "dice_global": _json_number(s.dice_global),
                "metrics": {
                    m: {
                        "mean": _json_number(ms.mean),
                        "std": _json_number(ms.std),
                        "n": ms.n,
                        "excluded": ms.excluded,
                    }
                    for m, ms in s.metrics.items()
                },
            }
            for name, s in summaries.items()
        },
    }
    return json.dumps(document, indent=2, allow_nan=False) + "\n"
