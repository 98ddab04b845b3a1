"""Which axial slices the model reads: only those from where the liver starts to where it ends.

The liver spans about half of an abdominal CT and a quarter of a chest-abdomen-pelvis scan,
so reading every slice spends most of the time on slices that come out background. A
survey reads every ``step``-th slice (and the last one) with the model itself; the liver's
extent along z is then the run from the first to the last surveyed slice that has liver
(any voxel labelled liver or tumor), and every slice between the surveyed liver-free slices
that bound that run is read. The slices outside are background without being read.

Why this never cuts the liver that reading every slice would give, after post-processing:
the liver is one connected run of slices, and the run that was read is bounded on each side
by a slice the model read and found liver-free (or by the scan's first or last slice). So
the whole connected liver the survey touched is read; a predicted liver piece outside it
lies beyond a liver-free slice, is not connected to that liver, and would be removed by the
post-processing's largest connected component anyway (:mod:`.postprocess`). What the survey
can miss is a liver run shorter than ``step`` slices lying between two surveyed slices: with
the default spacing of the survey, :data:`SURVEY_MM`, a liver under 15 mm long, which a scan
only shows where its field of view grazes the liver's dome or tip, and then at its first or
last slice, which is always surveyed.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

__all__ = ["SURVEY_MM", "read_liver_slices", "survey_step"]

SURVEY_MM = 15.0
"""The distance (mm along z) between two surveyed slices."""

Reader = Callable[[np.ndarray], np.ndarray]
"""``read(ks)``: predict the slices ``ks`` (ascending indices, at most a batch), keep their
outputs, and return for each whether it has liver (a bool array of ``len(ks)``)."""


def survey_step(depth: int, slice_mm: float | None, survey_mm: float = SURVEY_MM) -> int:
    """Slices between two surveyed slices: ``survey_mm`` over the slice spacing, rounded
    down (at least 1). A scan too short to gain from a survey (under four steps) gets 1:
    every slice is read."""
    if slice_mm is None or not math.isfinite(slice_mm) or slice_mm <= 0:
        return 1
    step = max(1, int(survey_mm // slice_mm))
    return step if depth >= 4 * step else 1


def _batches(ks: list[int], size: int) -> list[np.ndarray]:
    return [np.asarray(ks[i:i + size], dtype=np.int64) for i in range(0, len(ks), size)]


def read_liver_slices(depth: int, step: int, read: Reader, batch_size: int,
                      progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Read the slices the liver needs (see the module docstring) and return which were
    read (a bool array of ``depth``). ``step`` 1 reads every slice.

    ``progress(settled, depth)`` is called after every batch: ``settled`` counts the slices
    read or known to stay background.
    """
    if depth < 1:
        raise ValueError(f"a volume needs at least one slice, got {depth}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    done = np.zeros(depth, dtype=bool)
    liver = np.zeros(depth, dtype=bool)

    def run(ks: list[int], skipped: int) -> None:
        for batch in _batches(ks, batch_size):
            liver[batch] = np.asarray(read(batch), dtype=bool)
            done[batch] = True
            if progress is not None:
                progress(int(done.sum()) + skipped, depth)

    if step <= 1:
        run(list(range(depth)), 0)
        return done
    survey = sorted({*range(0, depth, step), depth - 1})
    run(survey, 0)  # the progress of the survey counts its slices only
    found = np.flatnonzero(liver)
    if found.size == 0:
        if progress is not None:
            progress(depth, depth)
        return done
    survey_index = {k: i for i, k in enumerate(survey)}
    first, last = survey_index[int(found[0])], survey_index[int(found[-1])]
    low = survey[first - 1] + 1 if first > 0 else 0  # the liver-free surveyed slice below
    high = survey[last + 1] if last + 1 < len(survey) else depth  # ... and above
    todo = [k for k in range(low, high) if not done[k]]
    outside = depth - int(done.sum()) - len(todo)
    run(todo, outside)
    if progress is not None and not todo:
        progress(depth, depth)
    return done
