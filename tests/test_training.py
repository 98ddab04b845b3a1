"""`liverseg train`: a tiny run end to end, resume, bad data, multi-worker, JAX."""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import pytest
from click.testing import CliRunner
from synthetic import write_lits

from keras_liverseg.cli.main import cli

TINY = {"input_shape": [32, 32, 3], "filters": [4, 8, 16, 32, 64]}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_lits(tmp_path_factory.mktemp("train_data"), count=4, shape=(48, 48, 10))


def config_file(folder: Path, **values) -> Path:
    path = folder / "train.json"
    settings = {"model_config": TINY, "steps_per_epoch": 6, "batch_size": 4,
                "learning_rate": 3e-3, "validation_fraction": 0.25, **values}
    path.write_text(json.dumps(settings))
    return path


def train_args(data, out, config, *extra):
    return ["train", "--data", str(data), "-o", str(out), "--config", str(config), *extra]


def history(run: Path) -> list[dict]:
    with (run / "history.csv").open() as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow
def test_tiny_run_learns_and_writes_every_artefact(dataset, tmp_path):
    run = tmp_path / "run"
    # UNet# with both kinds of deep supervision and the classification guides, together
    config = config_file(tmp_path, model_config={**TINY, "decoder_heads": True,
                                                 "classification_guide": True})
    result = CliRunner().invoke(cli, train_args(dataset, run, config, "--epochs", "4"))
    assert result.exit_code == 0, result.output
    for name in ("config.json", "split.json", "state.json", "model.keras", "model_card.json",
                 "model_card.md", "history.csv", "checkpoints/best.weights.h5",
                 "checkpoints/last.weights.h5", "checkpoints/last.optimizer.npz"):
        assert (run / name).is_file(), name
    assert any((run / "logs").iterdir())
    rows = history(run)
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4]
    assert float(rows[-1]["loss"]) < float(rows[0]["loss"])
    card = json.loads((run / "model_card.json").read_text())
    assert card["preprocessing"]["input_size"] == [32, 32]
    assert card["classes"] == ["background", "liver", "tumor"]
    assert card["command"].startswith("liverseg train")
    assert len(card["data"]["validation_cases"]) == 1
    assert 0 <= card["validation"]["dice_per_case_liver"] <= 1

    import keras

    model = keras.saving.load_model(run / "model.keras", safe_mode=True)
    assert {"mask", "de_3_0", "cls_mask", "cls_de_1_2"} <= set(model.output_names)


@pytest.mark.slow
def test_a_loss_that_turns_nan_stops_the_run_and_keeps_the_last_good_checkpoint(
        dataset, tmp_path, monkeypatch):
    from keras_liverseg.training import run as run_module

    real = run_module.make_epoch_runner

    def nan_in_epoch_2(*args, **kwargs):
        epoch = real(*args, **kwargs)
        calls = []

        def run_epoch(first):
            calls.append(first)
            return epoch(first) if len(calls) == 1 else float("nan")

        return run_epoch

    monkeypatch.setattr(run_module, "make_epoch_runner", nan_in_epoch_2)
    run = tmp_path / "nan"
    result = CliRunner().invoke(cli, train_args(dataset, run, config_file(tmp_path),
                                                "--epochs", "3"))
    assert result.exit_code == 2
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("Error: training loss is nan after epoch 2; epoch 1's checkpoint")
    assert "Traceback" not in result.output
    assert json.loads((run / "state.json").read_text())["epoch"] == 1
    assert [int(r["epoch"]) for r in history(run)] == [1]
    with h5py.File(run / "checkpoints" / "last.weights.h5") as saved:
        values = []
        saved.visititems(lambda _, item: values.append(item[()])
                         if isinstance(item, h5py.Dataset) else None)
    assert values and all(np.isfinite(v).all() for v in values)


@pytest.mark.slow
def test_mixed_precision_run_stays_finite_and_restores_the_policy(dataset, tmp_path):
    import keras

    run = tmp_path / "bf16"
    result = CliRunner().invoke(cli, train_args(dataset, run, config_file(tmp_path),
                                                "--epochs", "1", "--mixed-precision",
                                                "--loss", "dice_ce", "--tumor-fraction", "0.5"))
    assert result.exit_code == 0, result.output
    assert np.isfinite(float(history(run)[0]["loss"]))
    saved = json.loads((run / "config.json").read_text())
    assert (saved["loss"], saved["tumor_fraction"]) == ("dice_ce", 0.5)
    assert keras.mixed_precision.global_policy().name == "float32"


def _optimizer_iterations(run: Path) -> int:
    saved = np.load(run / "checkpoints" / "last.optimizer.npz")
    return int(saved["v0"])


@pytest.mark.slow
def test_resume_continues_after_the_last_completed_epoch(dataset, tmp_path):
    config = config_file(tmp_path)
    run = tmp_path / "run"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    process = subprocess.Popen(
        [sys.executable, "-m", "keras_liverseg.cli.main",
         *train_args(dataset, run, config, "--epochs", "8", "--quiet")],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    while time.time() < deadline and process.poll() is None:
        state = run / "state.json"
        if state.is_file() and json.loads(state.read_text())["epoch"] >= 1:
            break
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)  # an interrupted run
    process.wait()
    done = json.loads((run / "state.json").read_text())["epoch"]
    assert 1 <= done < 8

    result = CliRunner().invoke(cli, train_args(dataset, run, config, "--epochs", "8",
                                                "--resume"))
    assert result.exit_code == 0, result.output
    assert f"resuming after epoch {done}" in result.output
    epochs = [int(r["epoch"]) for r in history(run)]
    assert epochs == list(range(1, 9))
    assert _optimizer_iterations(run) == 8 * 6  # the optimizer state came back too


def test_bad_runs_are_one_line_errors(dataset, tmp_path):
    config = config_file(tmp_path)
    existing = tmp_path / "busy"
    existing.mkdir()
    (existing / "something").write_text("x")
    broken = write_lits(tmp_path / "broken", count=2, shape=(32, 32, 6))
    (broken / "segmentation-1.nii.gz").unlink()
    cases = [
        train_args(tmp_path / "none", tmp_path / "r1", config),
        train_args(tmp_path / "empty_dir", tmp_path / "r2", config),
        train_args(broken, tmp_path / "r3", config),
        train_args(dataset, existing, config),
        train_args(dataset, tmp_path / "r4", config, "--resume"),
        train_args(dataset, tmp_path / "r5", config, "--model", "nnunet"),
        train_args(dataset, tmp_path / "r6", config, "--epochs", "0"),
        train_args(dataset, tmp_path / "r7", config, "--tumor-fraction", "0.8",
                   "--liver-fraction", "0.5"),
    ]
    # the --config file's model counts (it was overridden by --model's default)
    other = tmp_path / "other.json"
    other.write_text(json.dumps({**json.loads(config.read_text()), "model": "nnunet"}))
    cases.append(train_args(dataset, tmp_path / "r8", other))
    # found while reading the data, after the run has written its cache
    mismatch = write_lits(tmp_path / "mismatch", count=4, shape=(32, 32, 6))
    nib.save(nib.Nifti1Image(np.zeros((32, 32, 5), np.uint8), np.eye(4)),
             mismatch / "segmentation-3.nii.gz")
    cases.append(train_args(mismatch, tmp_path / "r9", config))
    (tmp_path / "empty_dir").mkdir()
    for args in cases:
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 2, (args, result.output)
        assert "Traceback" not in result.output
        assert result.output.strip().count("\n") == 0, result.output
    # a new run that fails leaves nothing behind
    assert sorted(p.name for p in tmp_path.glob("r*")) == []
    assert "segmentation-1" in CliRunner().invoke(cli, cases[2]).output


def test_the_loss_setting_picks_the_papers_loss_or_batch_dice_ce():
    from keras_liverseg import losses
    from keras_liverseg.training.config import TrainConfig
    from keras_liverseg.training.run import _segmentation_loss

    assert isinstance(_segmentation_loss("unet_sharp"), losses.MixedLoss)
    assert isinstance(_segmentation_loss("mu_net"), losses.SoftmaxMSELoss)
    batch = _segmentation_loss("unet_sharp", "dice_ce")
    assert isinstance(batch, losses.SegLoss) and not batch.per_image
    with pytest.raises(ValueError, match="loss must be one of"):
        TrainConfig(data="d", output="o", loss="hinge")


@pytest.mark.parametrize("text, expected", [
    ("[1, 2]", "must be a JSON object"),
    ('"epochs: 10"', "must be a JSON object"),
    ('{"epochs": "ten"}', "'epochs' must be an integer, got 'ten'"),
    ('{"epochs": 2.5}', "'epochs' must be an integer, got 2.5"),
    ('{"augment": "yes"}', "'augment' must be true or false"),
    ('{"learning_rate": true}', "'learning_rate' must be a number"),
    ('{"model_config": [32, 32]}', "'model_config' must be a JSON object"),
    ('{"init": 3}', "'init' must be a string or null"),
    ('{"epochs": 2', "is not a JSON file"),
])
def test_a_config_file_of_the_wrong_shape_is_one_line_naming_the_key(tmp_path, text, expected):
    path = tmp_path / "x.json"
    path.write_text(text)
    result = CliRunner().invoke(cli, train_args(tmp_path / "data", tmp_path / "run", path))
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"Error: --config {path}"), result.output
    assert expected in result.output
    assert result.output.strip().count("\n") == 0, result.output
    assert not (tmp_path / "run").exists()


def test_config_values_are_taken_as_their_field_types():
    from keras_liverseg.training.config import ConfigError, TrainConfig

    config = TrainConfig.from_dict({"data": "d", "output": "o", "epochs": 3.0,
                                    "learning_rate": 1, "liver_roi": None,
                                    "model_config": {"filters": [4, 8]}})
    assert config.epochs == 3 and isinstance(config.epochs, int)
    assert config.learning_rate == 1.0 and isinstance(config.learning_rate, float)
    with pytest.raises(ConfigError, match="'liver_roi' must be true or false or null"):
        TrainConfig.from_dict({"data": "d", "output": "o", "liver_roi": 1})
    with pytest.raises(ConfigError, match="'data' must be a string, got None"):
        TrainConfig.from_dict({"data": None, "output": "o"})


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.mark.slow
def test_two_workers_end_with_identical_weights(dataset, tmp_path):
    config = config_file(tmp_path, validation_fraction=0.0)
    workers = [f"127.0.0.1:{p}" for p in _free_ports(2)]
    processes = []
    for index in range(2):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        env = {**os.environ, "TF_CONFIG": json.dumps(tf_config), "TF_CPP_MIN_LOG_LEVEL": "3"}
        args = train_args(dataset, tmp_path / f"worker{index}", config, "--epochs", "1",
                          "--strategy", "multi-worker", "--quiet")
        processes.append(subprocess.Popen([sys.executable, "-m", "keras_liverseg.cli.main",
                                           *args], env=env, stderr=subprocess.PIPE, text=True))
    for process in processes:
        _, err = process.communicate(timeout=600)
        assert process.returncode == 0, err[-3000:]
    weights = []
    for index in range(2):
        with h5py.File(tmp_path / f"worker{index}" / "checkpoints" / "last.weights.h5") as f:
            arrays = {}
            f.visititems(lambda name, obj, a=arrays: a.__setitem__(name, obj[()])
                         if isinstance(obj, h5py.Dataset) else None)
            weights.append(arrays)
    assert weights[0].keys() == weights[1].keys() and len(weights[0]) > 10
    for name in weights[0]:
        np.testing.assert_array_equal(weights[0][name], weights[1][name], err_msg=name)
    initial = json.loads((tmp_path / "worker0" / "state.json").read_text())
    assert initial["epoch"] == 1


@pytest.mark.slow
def test_the_same_tiny_run_on_jax_without_tensorflow(dataset, tmp_path):
    pytest.importorskip("jax")
    run = tmp_path / "run"
    # a JAX-only install (a GPU machine with JAX and no TensorFlow): importing it fails
    blocker = tmp_path / "no_tensorflow" / "tensorflow"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('no TensorFlow here')\n")
    path = os.pathsep.join(filter(None, [str(blocker.parent), os.environ.get("PYTHONPATH")]))
    # two CPU devices, so that the run is data parallel (keras.distribution.DataParallel)
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu", "PYTHONPATH": path,
           "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    args = train_args(dataset, run, config_file(tmp_path), "--epochs", "3")
    result = subprocess.run([sys.executable, "-m", "keras_liverseg.cli.main", *args], env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "data parallel over 2 JAX devices" in result.stderr
    assert "TensorBoard logs skipped" in result.stderr
    rows = history(run)
    assert len(rows) == 3 and float(rows[-1]["loss"]) < float(rows[0]["loss"])
    assert json.loads((run / "model_card.json").read_text())["versions"]["backend"] == "jax"


@pytest.mark.slow
def test_es_unet_pp_trains_in_two_stages_from_one_command(dataset, tmp_path):
    config = config_file(tmp_path, encoder_epochs=3, feature_supervision="encoder",
                         model_config={"input_shape": [32, 32, 3],
                                       "filters": [4, 8, 16, 32, 64]})
    run = tmp_path / "es"
    result = CliRunner().invoke(cli, train_args(dataset, run, config, "--model", "es_unet_pp",
                                                "--epochs", "2"))
    assert result.exit_code == 0, result.output
    assert (run / "encoder.weights.h5").is_file()
    with (run / "encoder_history.csv").open() as handle:
        encoder_losses = [float(r["loss"]) for r in csv.DictReader(handle)]
    assert len(encoder_losses) == 3 and encoder_losses[-1] < encoder_losses[0]
    assert len(history(run)) == 2
    card = json.loads((run / "model_card.json").read_text())
    assert card["training"]["feature_supervision"] == "encoder"

    import keras

    model = keras.saving.load_model(run / "model.keras", safe_mode=True)
    assert {f"enc_{i}_0" for i in range(1, 5)} <= set(model.output_names)


@pytest.mark.slow
def test_init_from_weights_starts_where_they_left_off(dataset, tmp_path):
    first = tmp_path / "first"
    assert CliRunner().invoke(cli, train_args(dataset, first, config_file(tmp_path),
                                              "--epochs", "1")).exit_code == 0
    weights = first / "checkpoints" / "best.weights.h5"
    second = tmp_path / "second"
    result = CliRunner().invoke(cli, train_args(dataset, second, config_file(tmp_path),
                                                "--epochs", "1", "--lr", "1e-12",
                                                "--init", str(weights)))
    assert result.exit_code == 0, result.output
    with h5py.File(weights) as a, h5py.File(second / "checkpoints" / "last.weights.h5") as b:
        name = "layers/conv2d/vars/0"  # the first convolution's kernel
        np.testing.assert_allclose(b[name][()], a[name][()], atol=1e-6)
    bad = CliRunner().invoke(cli, train_args(dataset, tmp_path / "third", config_file(tmp_path),
                                             "--init", str(tmp_path / "nope.weights.h5")))
    assert bad.exit_code == 2 and "Traceback" not in bad.output
    assert not (tmp_path / "third").exists()  # nothing half-made


@pytest.mark.slow
def test_second_stage_models_train_on_the_liver_region(dataset, tmp_path):
    from keras_liverseg.training.config import TrainConfig

    assert TrainConfig("d", "o", model="unet_sharp_roi").crops_to_liver
    assert TrainConfig("d", "o", task="tumor").crops_to_liver
    assert not TrainConfig("d", "o", model="unet_sharp").crops_to_liver
    assert not TrainConfig("d", "o", model="unet_sharp_roi", liver_roi=False).crops_to_liver
    runs = {}
    for flag in ("--liver-roi", "--whole-slices"):
        run = tmp_path / flag.strip("-")
        result = CliRunner().invoke(cli, train_args(dataset, run, config_file(tmp_path),
                                                    "--epochs", "1", flag))
        assert result.exit_code == 0, result.output
        card = json.loads((run / "model_card.json").read_text())
        assert card["command"].endswith(flag) or f"{flag} " in card["command"]
        runs[flag] = int(result.output.split(" training slices")[0].rsplit("(", 1)[1])
    assert 0 < runs["--liver-roi"] < runs["--whole-slices"]  # crops keep the liver's slices


def test_validation_leaves_a_class_absent_from_the_reference_out(oracle_model):
    """Dice of an empty prediction of an empty class is 1 by convention; not a score."""
    from keras_liverseg.data.volumes import Volume
    from keras_liverseg.training.validation import describe, validate

    rng = np.random.default_rng(0)
    image = rng.normal(-90, 5, (32, 32, 4)).astype(np.float32)
    labels = np.zeros(image.shape, np.uint8)
    labels[8:24, 6:26, :] = 1  # liver, no tumor
    image[labels == 1] = 150.0
    image[8:12, 6:10, 1] = 400.0  # a bright spot in the liver the oracle calls tumor
    volume = Volume("0", image, labels, np.arange(4), np.array([], int))

    nothing = validate(oracle_model(liver_hu=5000.0, tumor_hu=6000.0), [volume], "both")
    liver = validate(oracle_model(liver_hu=100.0, tumor_hu=300.0), [volume], "both")
    assert nothing["dice_per_case_liver"] == 0.0
    assert liver["dice_per_case_liver"] > 0.95
    for scores in (nothing, liver):
        assert scores["dice_per_case_tumor"] is None and scores["cases_tumor"] == 0
        assert scores["dice_per_case"] == scores["dice_per_case_liver"]
    assert liver["false_positive_cases_tumor"] == 1 and nothing["false_positive_cases_tumor"] == 0
    assert liver["dice_per_case"] > nothing["dice_per_case"]
    text = describe(liver, "both")
    assert "tumor not scored" in text and "in 1 case" in text and "tumor 1" not in text


@pytest.mark.slow
def test_the_best_epoch_is_not_the_one_that_predicts_no_tumor_on_tumor_free_cases(
        tmp_path, monkeypatch):
    """Epoch 1 predicts nothing, epoch 2 finds the liver (and a false tumor voxel): with no
    tumor in the validation cases, epoch 2 is the better model."""
    import nibabel as nib

    from keras_liverseg.training import validation

    data = write_lits(tmp_path / "data", count=4, shape=(48, 48, 10))
    for path in data.glob("segmentation-*.nii.gz"):
        image = nib.load(path)
        labels = np.minimum(np.asarray(image.dataobj), 1).astype(np.uint8)  # no tumor
        nib.save(nib.Nifti1Image(labels, image.affine), path)
    calls = []

    def epochs_apart(loaded, volume, **_):
        calls.append(1)
        labels = np.zeros(volume.shape, np.uint8)
        if len(calls) >= 2:  # epoch 2 and the final check of the best weights
            labels[volume > 60] = 1
            labels[tuple(np.argwhere(volume > 60)[0])] = 2
        return labels, None

    monkeypatch.setattr(validation, "predict_slices", epochs_apart)
    run = tmp_path / "run"
    result = CliRunner().invoke(cli, train_args(data, run, config_file(tmp_path),
                                                "--epochs", "2"))
    assert result.exit_code == 0, result.output
    card = json.loads((run / "model_card.json").read_text())
    assert card["best_epoch"] == 2
    assert card["validation"]["dice_per_case_liver"] > 0.5
    assert card["validation"]["dice_per_case_tumor"] is None
    assert "tumor not scored" in (run / "model_card.md").read_text()
    assert [row["dice_per_case_tumor"] for row in history(run)] == ["", ""]
