"""Reading only the liver's slices: the survey, the run it reads, and that labels match."""

from __future__ import annotations

import numpy as np
import pytest

from keras_liverseg import predict_volume
from keras_liverseg.inference.slice_range import SURVEY_MM, read_liver_slices, survey_step


class FakeModel:
    """``read(ks)`` for a volume whose slices with liver are ``liver``; records the calls."""

    def __init__(self, liver: np.ndarray) -> None:
        self.liver = np.asarray(liver, dtype=bool)
        self.calls: list[list[int]] = []

    def __call__(self, ks: np.ndarray) -> np.ndarray:
        self.calls.append([int(k) for k in ks])
        return self.liver[ks]

    @property
    def read(self) -> list[int]:
        return [k for call in self.calls for k in call]


def liver_run(depth: int, start: int, stop: int) -> np.ndarray:
    liver = np.zeros(depth, dtype=bool)
    liver[start:stop] = True
    return liver


def run(liver: np.ndarray, step: int, batch_size: int = 4):
    model = FakeModel(liver)
    progress: list[tuple[int, int]] = []
    done = read_liver_slices(len(liver), step, model, batch_size,
                             lambda a, b: progress.append((a, b)))
    assert sorted(model.read) == sorted(set(model.read)), "a slice was read twice"
    assert all(len(call) <= batch_size and call == sorted(call) for call in model.calls)
    assert np.flatnonzero(done).tolist() == sorted(model.read)
    assert progress[-1] == (len(liver), len(liver))
    assert [a for a, _ in progress] == sorted(a for a, _ in progress)
    return done, model


def assert_liver_read_and_bounded(liver: np.ndarray, done: np.ndarray) -> None:
    """Every liver slice is read, and the read run around it ends in liver-free slices (or
    the scan's edge) that were read too."""
    assert done[liver].all()
    first, last = np.flatnonzero(liver)[[0, -1]]
    assert first == 0 or (done[first - 1] and not liver[first - 1])
    assert last == len(liver) - 1 or (done[last + 1] and not liver[last + 1])


@pytest.mark.parametrize("start, stop", [(40, 70), (0, 25), (80, 100), (0, 100), (51, 58)])
def test_the_liver_run_is_read_whole_wherever_it_lies(start, stop):
    """In the middle, at the scan's very bottom or top, filling it, or just over one step."""
    liver = liver_run(100, start, stop)
    done, _ = run(liver, step=6)
    assert_liver_read_and_bounded(liver, done)
    if stop - start < 60:
        assert done.sum() < 60, "the survey should save most of the liver-free slices"


def test_random_liver_runs_at_least_a_step_long_are_never_cut():
    rng = np.random.default_rng(0)
    for _ in range(300):
        depth = int(rng.integers(20, 200))
        step = int(rng.integers(2, max(3, depth // 4)))
        length = int(rng.integers(step, depth + 1))
        start = int(rng.integers(0, depth - length + 1))
        liver = liver_run(depth, start, start + length)
        done, _ = run(liver, step, batch_size=int(rng.integers(1, 9)))
        assert_liver_read_and_bounded(liver, done)


def test_no_liver_reads_the_survey_only():
    done, model = run(np.zeros(50, dtype=bool), step=5)
    assert model.read == [0, 5, 10, 15, 20, 25, 30, 35, 40, 45, 49]
    assert done.sum() == 11


def test_liver_pieces_far_apart_are_read_with_everything_between():
    liver = liver_run(120, 10, 30) | liver_run(120, 90, 100)
    done, _ = run(liver, step=5)
    # surveyed: 10 and 95 have liver, 5 and 100 do not; all between them is read
    unread = [*range(1, 5), *range(101, 105), *range(106, 110), *range(111, 115),
              *range(116, 119)]  # the rest of the survey (0, 105, 110, 115, 119) is read
    assert np.flatnonzero(~done).tolist() == unread


def test_step_one_and_one_slice_scans_read_every_slice():
    for depth in (1, 2, 7):
        done, model = run(liver_run(depth, 0, 1), step=1)
        assert done.all() and model.read == list(range(depth))


def test_a_liver_shorter_than_a_step_between_two_surveyed_slices_is_missed():
    """The documented limit: a run of under ``step`` slices between surveyed ones."""
    liver = liver_run(60, 21, 24)
    done, _ = run(liver, step=5)
    assert not done[21:24].any()


def test_survey_step_is_survey_mm_apart_and_1_for_short_or_unknown_spacing():
    assert SURVEY_MM == 15.0
    assert survey_step(200, 1.0) == 15
    assert survey_step(200, 2.5) == 6
    assert survey_step(200, 5.0) == 3
    assert survey_step(200, 20.0) == 1
    assert survey_step(59, 1.0) == 1  # under four steps: read it all
    assert survey_step(200, None) == 1 and survey_step(200, 0.0) == 1


def test_bad_arguments():
    with pytest.raises(ValueError, match="slice"):
        read_liver_slices(0, 3, FakeModel(np.zeros(0, bool)), 4)
    with pytest.raises(ValueError, match="batch_size"):
        read_liver_slices(5, 1, FakeModel(np.zeros(5, bool)), 0)


def phantom(depth: int, liver: tuple[int, int] | None, tumor: tuple[int, int] | None = None):
    """A body (40 HU) in air with a liver block (120 HU) over slices ``liver`` and a tumor
    (400 HU) over ``tumor``."""
    volume = np.full((32, 32, depth), -1000.0, dtype=np.float32)
    volume[2:30, 2:30] = 40.0
    if liver is not None:
        volume[8:24, 6:26, liver[0]:liver[1]] = 120.0
    if tumor is not None:
        volume[12:18, 12:18, tumor[0]:tumor[1]] = 400.0
    return volume


@pytest.mark.parametrize("liver, tumor", [((30, 70), (40, 50)), ((0, 20), None),
                                          ((85, 100), (95, 100)), (None, None)])
def test_predict_volume_gives_the_labels_of_every_slice_and_says_what_it_read(
        oracle_model, liver, tumor):
    model = oracle_model()
    affine = np.diag([1.0, 1.0, 2.5, 1.0])  # 2.5 mm slices: a survey every 6th
    volume = phantom(100, liver, tumor)
    everything = predict_volume(model, volume, affine, all_slices=True,
                                return_probabilities=True)
    surveyed = predict_volume(model, volume, affine, return_probabilities=True)
    np.testing.assert_array_equal(surveyed.labels, everything.labels)
    assert everything.report["slices_read"] == {"read": 100, "total": 100, "survey_step": 1}
    read = surveyed.report["slices_read"]
    assert read["survey_step"] == 6 and read["total"] == 100
    assert surveyed.report["options"]["all_slices"] is False
    expected_max = 18 + (liver[1] - liver[0] + 12 if liver else 0)
    assert read["read"] <= expected_max
    np.testing.assert_allclose(surveyed.probabilities.astype(np.float32),
                               everything.probabilities.astype(np.float32), atol=1e-3)
    if tumor is not None:
        assert surveyed.report["lesions"] == everything.report["lesions"]


def test_three_class_labels_are_argmax_ties_included():
    from keras_liverseg.inference.predictor import _labels_of

    rng = np.random.default_rng(0)
    for classes in (1, 2, 3, 4):
        probs = rng.integers(0, 4, (3, 17, 19, classes)).astype(np.float32) / 3  # many ties
        expected = (probs[..., 0] > 0.5) if classes == 1 else np.argmax(probs, axis=-1)
        np.testing.assert_array_equal(_labels_of(probs), expected.astype(np.uint8))
