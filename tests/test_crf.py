"""The fully connected CRF (keras_liverseg.inference.crf) against a brute-force dense CRF,
and `predict_volume(crf=...)` / `liverseg predict --crf`."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from keras_liverseg.inference.crf import (
    CRFOptions,
    _BilateralGrid,
    dense_crf,
    refine_volume,
)


def brute_force_kernels(image: np.ndarray, spacing, options: CRFOptions):
    """The appearance and smoothness kernels of Eq. 5 (seed 003) between every pair of
    pixels, as dense ``(N, N)`` matrices with the diagonal (self) included."""
    rows, cols = image.shape
    rr, cc = np.meshgrid(np.arange(rows) * spacing[0], np.arange(cols) * spacing[1],
                         indexing="ij")
    positions = np.stack([rr.ravel(), cc.ravel()], axis=1)
    hu = image.ravel().astype(np.float64)
    d2 = ((positions[:, None] - positions[None]) ** 2).sum(-1)
    appearance = np.exp(-d2 / (2 * options.appearance_mm**2)
                        - (hu[:, None] - hu[None]) ** 2 / (2 * options.appearance_hu**2))
    smoothness = np.exp(-d2 / (2 * options.smoothness_mm**2))
    return appearance, smoothness


def brute_force_crf(probabilities: np.ndarray, image: np.ndarray, spacing,
                    options: CRFOptions) -> np.ndarray:
    """Mean-field inference of Kraehenbuehl and Koltun (Algorithm 1) with every pair
    summed explicitly (O(N^2)), Potts compatibility, unary -log P."""
    rows, cols, classes = probabilities.shape
    appearance, smoothness = brute_force_kernels(image, spacing, options)
    np.fill_diagonal(appearance, 0.0)  # sum over j != i
    np.fill_diagonal(smoothness, 0.0)
    unary = np.log(np.clip(probabilities.reshape(-1, classes), 1e-5, None))
    q = np.exp(unary)
    q /= q.sum(1, keepdims=True)
    for _ in range(options.iterations):
        # Potts: the energy of label l is sum_m w_m sum_{l' != l} k_m Q(l'); the sum over
        # all l' is the same for every l and cancels in the normalisation
        logits = unary + options.appearance_weight * appearance @ q \
            + options.smoothness_weight * smoothness @ q
        q = np.exp(logits - logits.max(1, keepdims=True))
        q /= q.sum(1, keepdims=True)
    return q.reshape(rows, cols, classes)


def disc_image(rows=24, cols=20, seed=0):
    """A bright disc (60 HU) on a darker background (-20 HU) with noise."""
    rng = np.random.default_rng(seed)
    rr, cc = np.meshgrid(np.arange(rows) - rows / 2, np.arange(cols) - cols / 2, indexing="ij")
    return np.where(np.hypot(rr, cc) < 7, 60.0, -20.0) + rng.normal(0, 8, (rows, cols))


@pytest.mark.parametrize("options", [
    CRFOptions(appearance_weight=0.05, appearance_mm=3.0, appearance_hu=15.0,
               smoothness_weight=0.1, smoothness_mm=1.5, iterations=5),
    CRFOptions(appearance_weight=0.02, appearance_mm=6.0, appearance_hu=30.0,
               smoothness_weight=0.2, smoothness_mm=1.0, iterations=10),
    CRFOptions(appearance_weight=0.2, appearance_mm=1.5, appearance_hu=5.0,
               smoothness_weight=0.0, smoothness_mm=1.0, iterations=3),
])
def test_mean_field_matches_brute_force(options):
    image = disc_image()
    probabilities = np.random.default_rng(1).dirichlet([1, 1, 1], image.shape)
    reference = brute_force_crf(probabilities, image, (0.8, 0.9), options)
    ours = dense_crf(probabilities.astype(np.float32), image, (0.8, 0.9), options)
    # the CRF changes the argmax of many pixels, and ours follows the brute force closely
    assert (reference.argmax(-1) != probabilities.argmax(-1)).sum() > 20
    assert np.abs(ours - reference).max() < 0.01
    top2 = np.sort(reference, axis=-1)[..., -2:]
    clear = top2[..., 1] - top2[..., 0] > 0.02  # no near-tie
    np.testing.assert_array_equal(ours.argmax(-1)[clear], reference.argmax(-1)[clear])
    np.testing.assert_allclose(ours.sum(-1), 1.0, atol=1e-5)


@pytest.mark.parametrize("theta_mm, theta_hu", [(3.0, 15.0), (8.0, 30.0), (1.2, 4.0)])
def test_bilateral_grid_approximates_the_dense_appearance_kernel(theta_mm, theta_hu):
    image = disc_image(seed=2).astype(np.float32)
    options = CRFOptions(appearance_mm=theta_mm, appearance_hu=theta_hu)
    appearance, _ = brute_force_kernels(image, (0.8, 0.9), options)
    values = np.random.default_rng(3).uniform(size=(image.size, 2)).astype(np.float32)
    exact = appearance @ values
    ours = _BilateralGrid(image, (0.8, 0.9), theta_mm, theta_hu)(values)
    assert np.abs(ours - exact).max() <= 0.04 * np.abs(exact).max()
    assert np.median(np.abs(ours - exact) / exact) < 0.015


def test_crf_removes_speckle_that_disagrees_with_the_image():
    image = disc_image(40, 40, seed=4)
    inside = image > 20
    rng = np.random.default_rng(5)
    foreground = np.where(inside, 0.8, 0.2)
    flipped = rng.uniform(size=image.shape) < 0.1  # 10 % of the pixels say the opposite
    foreground[flipped] = 1.0 - foreground[flipped]
    probabilities = np.stack([1 - foreground, foreground], -1).astype(np.float32)
    options = CRFOptions(appearance_weight=0.05, appearance_mm=4.0, appearance_hu=20.0,
                         smoothness_weight=0.1, smoothness_mm=1.0, iterations=5)
    refined = dense_crf(probabilities, image, (1.0, 1.0), options)
    before = (probabilities.argmax(-1) != inside).mean()
    after = (refined.argmax(-1) != inside).mean()
    assert before > 0.08 and after < 0.01


def test_hu_window_clips_the_appearance_intensities():
    image = disc_image()
    probabilities = np.random.default_rng(6).dirichlet([1, 1], image.shape).astype(np.float32)
    options = CRFOptions(appearance_weight=0.05, appearance_mm=3.0, appearance_hu=15.0)
    clipped = dense_crf(probabilities, np.clip(image, -10, 50), (1, 1), options)
    np.testing.assert_allclose(
        dense_crf(probabilities, image, (1, 1), options, hu_window=(-10, 50)), clipped,
        atol=1e-6)


@pytest.mark.parametrize("changes", [
    {"appearance_weight": -1.0}, {"smoothness_weight": float("nan")}, {"appearance_mm": 0.0},
    {"appearance_hu": -3.0}, {"smoothness_mm": float("inf")}, {"iterations": 0},
    {"iterations": 2.5},
])
def test_options_refuse_bad_values(changes):
    with pytest.raises(ValueError, match="CRF"):
        CRFOptions(**changes)


def test_refine_volume_touches_only_slices_and_boxes_with_foreground():
    rows, cols, depth = 64, 60, 5
    volume = np.full((rows, cols, depth), -20.0, np.float32)
    probabilities = np.zeros((rows, cols, depth, 3), np.float16)
    probabilities[..., 0] = 1.0  # background everywhere ...
    probabilities[20:30, 25:35, 2] = (0.3, 0.6, 0.1)  # ... but a blob in slice 2
    volume[20:30, 25:35, 2] = 60.0
    before = probabilities.copy()
    options = CRFOptions(appearance_weight=0.05, appearance_mm=3.0, appearance_hu=15.0,
                         smoothness_weight=0.1, smoothness_mm=1.0)
    refined = refine_volume(probabilities, volume, (1.0, 1.0), options)
    assert refined == [2]
    unchanged = np.ones((rows, cols, depth), bool)
    unchanged[17:33, 22:38, 2] = False  # the blob's box grown by ceil(3 mm / 1 mm)
    np.testing.assert_array_equal(probabilities[unchanged], before[unchanged])
    assert not np.array_equal(probabilities[20:30, 25:35, 2], before[20:30, 25:35, 2])
    assert (probabilities[20:30, 25:35, 2].argmax(-1) == 1).all()


def test_refine_volume_of_one_foreground_probability():
    volume = np.full((30, 30, 1), 0.0, np.float32)
    volume[10:20, 10:20] = 80.0
    probabilities = np.where(volume[..., None] > 40, 0.6, 0.0).astype(np.float32)
    probabilities[12, 12, 0, 0] = 0.3  # a doubtful pixel inside the bright square
    refine_volume(probabilities, volume, (1.0, 1.0),
                  CRFOptions(appearance_weight=0.1, appearance_mm=3.0, appearance_hu=10.0,
                             smoothness_weight=0.1, smoothness_mm=1.0))
    assert probabilities.shape == (30, 30, 1, 1)
    assert probabilities[12, 12, 0, 0] > 0.5
    assert (probabilities[10:20, 10:20, 0, 0] > 0.5).all()


def test_cli_defaults_are_the_options_defaults():
    from keras_liverseg.cli.predict import CRF_DEFAULTS

    assert CRF_DEFAULTS == dataclasses.asdict(CRFOptions())


def _noisy_liver(seed=7):
    """A 32x32x6 scan: a liver block at 115 HU in background at 85 HU, both with 15 HU
    noise (and air along one edge), so the oracle's 100 HU threshold mislabels about a
    sixth of the pixels."""
    rng = np.random.default_rng(seed)
    truth = np.zeros((32, 32, 6), np.uint8)
    truth[6:26, 8:28, 1:5] = 1
    volume = np.where(truth == 1, 115.0, 85.0) + rng.normal(0, 15, truth.shape)
    volume[0] = -1000.0  # air along one edge, as a CT has
    return volume.astype(np.float32), truth


SPECKLE_CRF = CRFOptions(appearance_weight=0.5, appearance_mm=4.0, appearance_hu=20.0,
                         smoothness_weight=1.0, smoothness_mm=1.5, iterations=5)


def test_predict_volume_with_crf_cleans_speckle_and_reports_it(oracle_model):
    from keras_liverseg.inference import predict_volume

    volume, truth = _noisy_liver()
    model = oracle_model(tumor_hu=None)
    plain = predict_volume(model, volume, postprocess=False, all_slices=True)
    refined = predict_volume(model, volume, postprocess=False, all_slices=True,
                             crf=SPECKLE_CRF, return_probabilities=True)
    wrong_before = (plain.labels != truth).mean()
    wrong_after = (refined.labels != truth).mean()
    assert wrong_before > 0.1 and wrong_after < wrong_before / 3
    # the labels are the refined probabilities' argmax
    np.testing.assert_array_equal(refined.labels, refined.probabilities.argmax(-1))
    assert refined.report["options"]["crf"] == dataclasses.asdict(SPECKLE_CRF)
    assert "crf" in refined.report["timing_s"] and plain.report["options"]["crf"] is None


def _run_cli(*args):
    from click.testing import CliRunner

    from keras_liverseg.cli.predict import predict

    return CliRunner().invoke(predict, [str(a) for a in args])


def _save_scan(path, volume):
    import nibabel as nib

    nib.save(nib.Nifti1Image(volume, np.diag([0.8, 0.8, 2.5, 1.0])), str(path))
    return path


def test_cli_crf_options_reach_the_report(tmp_path, oracle_model_file):
    import json

    volume, _ = _noisy_liver()
    source = _save_scan(tmp_path / "ct.nii.gz", volume)
    result = _run_cli(source, "-o", tmp_path / "seg.nii.gz", "--weights", oracle_model_file,
                      "--crf", "--crf-appearance-hu", 25, "--crf-iterations", 3,
                      "--report", tmp_path / "r.json", "--quiet")
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "r.json").read_text())
    expected = dataclasses.asdict(CRFOptions(appearance_hu=25.0, iterations=3))
    assert report["options"]["crf"] == expected


def test_cli_crf_settings_without_crf_are_a_user_error(tmp_path, oracle_model_file):
    from cli_checks import assert_user_error

    volume, _ = _noisy_liver()
    source = _save_scan(tmp_path / "ct.nii.gz", volume)
    out = tmp_path / "seg.nii.gz"
    result = _run_cli(source, "-o", out, "--weights", oracle_model_file,
                      "--crf-smoothness-mm", 3)
    assert_user_error(result, "--crf-smoothness-mm needs --crf")
    assert not out.exists()
