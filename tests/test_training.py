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
from jax_subprocess import jax_env
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

        def run_epoch(first, *steps):
            calls.append(first)
            return epoch(first, *steps) if len(calls) == 1 else float("nan")

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
    # data from two sources or none, two budgets, bad new options
    drawn = ["train", "--phantoms", "2", "--phantom-size", "64", "64", "8", "--config",
             str(config)]
    cases += [
        [*drawn, "--data", str(dataset), "-o", str(tmp_path / "r10")],
        ["train", "-o", str(tmp_path / "r11"), "--epochs", "1"],
        [*drawn, "-o", str(tmp_path / "r12"), "--epochs", "2", "--steps", "5"],
        [*drawn, "-o", str(tmp_path / "r13"), "--input-size", "40"],
        [*drawn, "-o", str(tmp_path / "r14"), "--model-config", "[4, 8]"],
        [*drawn, "-o", str(tmp_path / "r15"), "--model-config", "{filters"],
        [*drawn, "-o", str(tmp_path / "r16"), "--warmup", "1.5"],
        [*drawn, "-o", str(tmp_path / "r17"), "--minutes", "0"],
        [*drawn, "-o", str(tmp_path / "r18"), "--coarse", "1.5"],
        # coarse slices need a model that reads slices at a pixel spacing
        [*drawn, "-o", str(tmp_path / "r19"), "--coarse", "0.5"],
    ]
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
    with pytest.raises(ConfigError, match="'data' must be a string or null, got 3"):
        TrainConfig.from_dict({"data": 3, "output": "o"})
    with pytest.raises(ValueError, match="give data .*, phantoms .* or both"):
        TrainConfig.from_dict({"data": None, "output": "o"})
    with pytest.raises(ValueError, match="cannot be shared by several workers"):
        TrainConfig(data="d", output="o", minutes=5, strategy="multi-worker")
    drawn = TrainConfig.from_dict({"data": None, "output": "o", "phantoms": 4,
                                   "phantom_size": [64, 64, 8]})
    assert drawn.phantom_size == (64, 64, 8) and drawn.steps_per_epoch is None


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


# One worker of a multi-worker run, as `python -m keras_liverseg.cli.main` does, that also
# keeps its final model's weights (argv[1], .npz) for the test: only the chief writes files.
_WORKER = """
import sys

import numpy as np

from keras_liverseg.cli.main import main
from keras_liverseg.training import run

card = run._write_model_card


def keep_weights(*args, **kwargs):
    np.savez(sys.argv[1], *args[2].get_weights())
    return card(*args, **kwargs)


run._write_model_card = keep_weights
sys.exit(main(sys.argv[2:]))
"""


def _two_workers(run: Path, weights: Path, *args) -> list[str]:
    """Train with two workers on 127.0.0.1, both given ``-o run``; their stderr."""
    workers = [f"127.0.0.1:{p}" for p in _free_ports(2)]
    processes = []
    for index in range(2):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        env = {**os.environ, "TF_CONFIG": json.dumps(tf_config), "TF_CPP_MIN_LOG_LEVEL": "3"}
        command = [sys.executable, "-c", _WORKER, str(weights / f"worker{index}.npz"),
                   "train", "-o", str(run), "--strategy", "multi-worker", *args]
        processes.append(subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.PIPE, text=True))
    errors = []
    try:
        for process in processes:
            _, err = process.communicate(timeout=240)
            assert process.returncode == 0, err[-3000:]
            errors.append(err)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    return errors


def _run_files(run: Path) -> list[str]:
    return sorted(str(p.relative_to(run)) for p in run.rglob("*") if p.is_file())


def _assert_same_weights(folder: Path) -> None:
    chief, other = (np.load(folder / f"worker{i}.npz") for i in range(2))
    assert chief.files == other.files and len(chief.files) > 10
    for name in chief.files:
        np.testing.assert_array_equal(chief[name], other[name], err_msg=name)


def _scratch_folder(stderr: str) -> Path:
    line = next(x for x in stderr.splitlines() if x.startswith("not the chief worker"))
    return Path(line.split("scratch folder ", 1)[1].split(" (removed", 1)[0])


@pytest.mark.slow
def test_two_workers_write_one_run_folder_through_the_chief_and_resume_it(dataset, tmp_path):
    config = config_file(tmp_path, validation_fraction=0.25, steps_per_epoch=3)
    run = tmp_path / "run"
    data = ["--data", str(dataset), "--config", str(config)]
    chief, other = _two_workers(run, tmp_path, *data, "--epochs", "1")
    _assert_same_weights(tmp_path)  # the gradients and BatchNorm statistics were all-reduced

    # the chief's files, once each: no second TensorBoard event file, no worker folders
    files = _run_files(run)
    cache = [f for f in files if f.startswith("cache/")]
    logs = [f for f in files if f.startswith("logs/")]
    assert len(cache) == 2 * 4 and len(logs) == 1, files
    assert sorted(set(files) - set(cache) - set(logs)) == [
        "checkpoints/best.weights.h5", "checkpoints/last.optimizer.npz",
        "checkpoints/last.weights.h5", "config.json", "history.csv", "model.keras",
        "model_card.json", "model_card.md", "split.json", "state.json"]
    assert [int(r["epoch"]) for r in history(run)] == [1]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "run", "train.json", "worker0.npz", "worker1.npz"]  # no second run folder
    assert "not the chief worker" not in chief
    assert not _scratch_folder(other).exists()  # the other worker's scratch is gone

    # both workers continue the chief's run: its state, weights and optimizer state
    chief, other = _two_workers(run, tmp_path, *data, "--epochs", "2", "--resume")
    for err in (chief, other):
        assert "resuming after epoch 1" in err
    _assert_same_weights(tmp_path)
    assert [int(r["epoch"]) for r in history(run)] == [1, 2]
    assert json.loads((run / "state.json").read_text())["epoch"] == 2
    assert _optimizer_iterations(run) == 2 * 3  # 3 steps an epoch, all workers together
    files = _run_files(run)
    assert len([f for f in files if f.startswith("logs/")]) == 2  # one per run, not per worker
    assert not [f for f in files if "partial" in f]
    assert not _scratch_folder(other).exists()
    card = json.loads((run / "model_card.json").read_text())
    assert card["training"]["strategy"] == "multi-worker" and card["best_epoch"] >= 1


@pytest.mark.parametrize("tf_config, strategy, chief", [
    (None, "multi-worker", True),
    ({"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 0}},
     "multi-worker", True),
    ({"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 1}},
     "multi-worker", False),
    ({"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 1}},
     "auto", False),
    ({"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 1}},
     "one", True),  # TF_CONFIG but a one-process strategy: this process writes its run
    ({"cluster": {"chief": ["c:1"], "worker": ["a:1"]}, "task": {"type": "worker", "index": 0}},
     "multi-worker", False),
    ({"cluster": {"chief": ["c:1"], "worker": ["a:1"]}, "task": {"type": "chief", "index": 0}},
     "multi-worker", True),
])
def test_the_chief_is_tensorflows_chief_of_the_cluster(monkeypatch, tf_config, strategy, chief):
    import keras

    from keras_liverseg.training.workers import is_chief

    if tf_config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", json.dumps(tf_config))
    # multi-worker is TensorFlow's: on JAX every process is its own chief
    assert is_chief(strategy) is (chief or keras.backend.backend() != "tensorflow")


def test_another_worker_reads_the_run_folder_and_writes_only_to_its_scratch(
        tmp_path, monkeypatch):
    import keras

    from keras_liverseg.training import run as run_module
    from keras_liverseg.training.config import TrainConfig
    from keras_liverseg.training.workers import write_folder

    if keras.backend.backend() != "tensorflow":
        pytest.skip("multi-worker runs are TensorFlow's")
    monkeypatch.setenv("TF_CONFIG", json.dumps(
        {"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 1}}))
    run = tmp_path / "run"
    config = TrainConfig(data="d", output=str(run), strategy="multi-worker")
    with pytest.raises(RuntimeError, match="stop"), write_folder(run, "multi-worker") as own:
        assert own.is_dir() and not own.is_relative_to(run)
        state = run_module._start(run, config, False, own)  # a new run
        assert state["epoch"] == 0 and not run.exists()
        assert json.loads((own / "state.json").read_text())["epoch"] == 0
        raise RuntimeError("stop")
    assert not own.exists()  # removed however the run ends

    # the chief's run after epoch 2: resume reads it, and copies its best weights
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps(config.to_dict()))
    (run / "state.json").write_text(json.dumps({"epoch": 2, "best": 0.5, "best_epoch": 1}))
    (run / "checkpoints" / "best.weights.h5").write_bytes(b"epoch 1")
    before = _run_files(run)
    with write_folder(run, "multi-worker") as own:
        assert run_module._start(run, config, True, own)["epoch"] == 2
        assert (own / "checkpoints" / "best.weights.h5").read_bytes() == b"epoch 1"
        # without --resume, a run folder with a completed epoch is an older run's
        with pytest.raises(FileExistsError, match="pass --resume"):
            run_module._start(run, config, False, own)
    assert _run_files(run) == before and not own.exists()
    with write_folder(run, "one") as own:  # a one-process strategy: the run folder itself
        assert own == run


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
    env = jax_env("--xla_force_host_platform_device_count=2", PYTHONPATH=path)
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


# --- budgets, one-pass epochs, phantoms drawn on the fly (what trained the default weights) --

def _iterations(run: Path) -> int:
    return int(np.load(run / "checkpoints" / "last.optimizer.npz")["v0"])


@pytest.mark.slow
def test_a_tiny_phantom_run_with_a_step_budget_writes_the_run_folder(tmp_path):
    """What trained the default weights, in small: phantoms drawn in worker processes, a
    step budget, sampler worker processes, the zoo model rebuilt for another input size."""
    import keras

    split = tmp_path / "split.json"
    # a split made on two phantoms: the third, which it does not name, trains too
    split.write_text(json.dumps({"train": ["volume-0"], "validation": ["volume-1"]}))
    run = tmp_path / "run"
    result = CliRunner().invoke(cli, [
        "train", "--phantoms", "3", "--phantom-seed", "1", "--phantom-size", "64", "64", "8",
        "--steps", "3", "--steps-per-epoch", "2", "--batch-size", "2", "--workers", "2",
        "--model-config", json.dumps(TINY), "--input-size", "48", "--split-file", str(split),
        "-o", str(run)])
    assert result.exit_code == 0, result.output
    assert "drew 3 phantoms of seed 1" in result.output
    assert "2 training and 1 validation cases (16 training slices)" in result.output
    for name in ("config.json", "split.json", "state.json", "model.keras", "model_card.json",
                 "model_card.md", "history.csv", "checkpoints/best.weights.h5",
                 "checkpoints/last.weights.h5", "checkpoints/last.optimizer.npz"):
        assert (run / name).is_file(), name
    assert not (run / "cache").exists()  # nothing read from disk
    rows = history(run)
    assert [int(r["epoch"]) for r in rows] == [1, 2]  # 2 steps, then the last one
    assert json.loads((run / "state.json").read_text())["steps"] == 3 == _iterations(run)
    # the cosine ends the budget at 5 % of the learning rate
    assert float(rows[-1]["learning_rate"]) == pytest.approx(0.05 * 1e-3)
    assert json.loads((run / "split.json").read_text()) == {
        "train": ["volume-0", "volume-2"], "validation": ["volume-1"]}
    card = json.loads((run / "model_card.json").read_text())
    assert card["data"]["folder"] == "phantoms: 3 of seed 1, 64x64x8 voxels"
    assert card["data"]["training_cases"] == ["volume-0", "volume-2"]
    assert card["preprocessing"]["input_size"] == [48, 48]
    assert card["config"]["input_shape"] == [48, 48, 3]
    assert "--phantom-size 64 64 8" in card["command"] and "--steps 3" in card["command"]
    assert card["training"]["phantoms"] == 3 and card["training"]["workers"] == 2
    model = keras.saving.load_model(run / "model.keras", safe_mode=True)
    assert model.input_shape == (None, 48, 48, 3)


def test_dataset_and_phantoms_whose_ids_clash_are_refused(dataset, tmp_path):
    run = tmp_path / "run"
    result = CliRunner().invoke(cli, ["train", "--data", str(dataset), "--phantoms", "3",
                                      "--steps", "1", "-o", str(run)])
    assert result.exit_code == 2, result.output
    assert result.output.strip().count("\n") == 0, result.output
    assert "volume-0, volume-1, volume-2): number the dataset's cases from volume-3 up" \
        in result.output
    assert not run.exists() or not any(run.iterdir())


@pytest.mark.slow
def test_a_dataset_and_phantoms_train_together(tmp_path):
    """--data with --phantoms: the dataset's cases (decoded in worker processes, cached) and
    the drawn phantoms are split and sampled as one set of cases."""
    data = write_lits(tmp_path / "scans", count=2, shape=(48, 48, 10))
    for kind in ("volume", "segmentation"):  # numbered after the phantoms
        for i in range(2):
            (data / f"{kind}-{i}.nii.gz").rename(data / f"{kind}-{i + 10}.nii.gz")
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train": ["volume-10", "volume-0"],
                                 "validation": ["volume-11"]}))
    run = tmp_path / "run"
    result = CliRunner().invoke(cli, [
        "train", "--data", str(data), "--phantoms", "2", "--phantom-size", "64", "64", "8",
        "--steps", "2", "--batch-size", "2", "--workers", "2", "--split-file", str(split),
        "--model-config", json.dumps(TINY), "-o", str(run)])
    assert result.exit_code == 0, result.output
    assert "drew 2 phantoms of seed 0" in result.output
    # the unnamed phantom trains too; 10 + 8 + 8 slices
    assert "3 training and 1 validation cases (26 training slices)" in result.output
    assert json.loads((run / "split.json").read_text()) == {
        "train": ["volume-10", "volume-0", "volume-1"], "validation": ["volume-11"]}
    assert len(list((run / "cache").glob("*.npy"))) == 4  # the dataset's two cases alone
    card = json.loads((run / "model_card.json").read_text())
    assert card["data"]["folder"] == f"{data} + phantoms: 2 of seed 0, 64x64x8 voxels"


@pytest.mark.slow
def test_an_epoch_is_one_pass_over_the_training_slices(dataset, tmp_path):
    """3 training cases of 10 slices, batches of 4: ceil(30 / 4) = 8 steps an epoch, unless
    --steps-per-epoch says otherwise."""
    config = config_file(tmp_path, steps_per_epoch=None)
    one_pass = tmp_path / "pass"
    result = CliRunner().invoke(cli, train_args(dataset, one_pass, config, "--epochs", "1"))
    assert result.exit_code == 0, result.output
    assert "(30 training slices)" in result.output
    assert _iterations(one_pass) == 8
    assert json.loads((one_pass / "state.json").read_text())["steps"] == 8
    given = tmp_path / "given"
    result = CliRunner().invoke(cli, train_args(dataset, given, config, "--epochs", "1",
                                                "--steps-per-epoch", "3"))
    assert result.exit_code == 0, result.output
    assert _iterations(given) == 3


def test_the_learning_rate_warms_up_then_follows_a_cosine_over_the_steps():
    from keras_liverseg.training.config import TrainConfig
    from keras_liverseg.training.epochs import Budget, warmup_cosine

    schedule = warmup_cosine(1e-3, total_steps=100, warmup=0.1)
    rate = [float(schedule(step)) for step in range(101)]
    assert rate[0] == pytest.approx(5e-5) and rate[5] == pytest.approx(5.25e-4)
    assert rate[10] == pytest.approx(1e-3)
    assert all(a < b for a, b in zip(rate[:10], rate[1:11], strict=True))  # warm-up
    assert all(a > b for a, b in zip(rate[10:100], rate[11:], strict=True))  # cosine
    assert rate[55] == pytest.approx(5e-5 + 0.5 * (1e-3 - 5e-5))  # half-way down
    assert rate[100] == pytest.approx(5e-5)
    assert float(warmup_cosine(1e-3, 100, warmup=0.0)(0)) == pytest.approx(1e-3)

    # --steps 10 in epochs of 4: 4, 4, 2, each from the slice after the last one
    config = TrainConfig("d", "o", steps=10, batch_size=2, warmup=0.0)
    budget = Budget(config, steps_per_epoch=4)
    assert budget.epochs() == 3
    calls = []
    while not budget.finished():
        budget.run_epoch(lambda first, steps: calls.append((first, steps)) or 1.0, None, 2)
    assert calls == [(0, 4), (8, 4), (16, 2)]
    assert budget.learning_rate() == pytest.approx(5e-5)
    # a resumed run goes on from the steps it had done; --epochs 3 of 4 steps: 12 steps
    resumed = Budget(TrainConfig("d", "o", epochs=3), steps_per_epoch=4, steps_done=8)
    assert resumed.total_steps == 12 and resumed.done() == pytest.approx(8 / 12)


def test_a_time_budget_starts_its_clock_after_the_first_step(monkeypatch):
    from keras_liverseg.training import epochs
    from keras_liverseg.training.config import TrainConfig

    now = [100.0]
    monkeypatch.setattr(epochs.time, "perf_counter", lambda: now[0])
    monkeypatch.setattr(epochs, "CHUNK", 10)
    calls, rates = [], []

    def run_epoch(first, steps):
        calls.append((first, steps))
        now[0] += 60.0 if len(calls) == 1 else steps  # compiling, then a second a step
        return 2.0 if len(calls) == 1 else 1.0

    class Rate:
        def assign(self, value):
            rates.append(value)

    optimizer = type("Optimizer", (), {"learning_rate": Rate()})()
    config = TrainConfig("d", "o", minutes=0.5, learning_rate=1e-3, batch_size=4, warmup=0.1)
    budget = epochs.Budget(config, steps_per_epoch=25)
    assert budget.epochs() is None and budget.seconds() == 0.0
    first = budget.run_epoch(run_epoch, optimizer, batch_size=4)
    # the first step alone (the 60 s it compiled do not count), then chunks of 10
    assert calls == [(0, 1), (4, 10), (44, 10), (84, 4)]
    assert budget.seconds() == 24.0 and not budget.finished()
    assert first == pytest.approx((2.0 + 24 * 1.0) / 25)
    assert rates[:2] == [pytest.approx(5e-5), pytest.approx(5e-5)]  # the clock had not run
    budget.run_epoch(run_epoch, optimizer, batch_size=4)
    assert calls[4] == (100, 10) and budget.finished()  # 34 s > 30 s: the epoch ends early
    assert budget.steps_done == 35 and len(calls) == 5
    assert rates[3] > rates[4] > 5e-5  # the cosine over the time spent
    state = {"steps": budget.steps_done, "seconds": budget.seconds()}
    resumed = epochs.Budget(config, 25, state["steps"], state["seconds"])
    assert resumed.finished()  # a resumed run counts the time already spent


def test_a_checkpoint_writes_history_and_state_together(tmp_path):
    """history.csv is renamed into place with the checkpoint, before state.json: a row of an
    epoch state.json never recorded (a run killed between the two) is replaced when that
    epoch runs again, and an empty file left by a kill does not lose the header."""
    import keras

    from keras_liverseg.training.run import _checkpoint, _read_history

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    optimizer = keras.optimizers.Adam()
    optimizer.build(model.trainable_variables)
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "history.csv").write_text("")  # what a kill mid-write used to leave
    for epoch, loss in ((1, 0.9), (2, 0.8), (2, 0.7), (3, 0.6)):  # epoch 2 run twice
        _checkpoint(tmp_path, model, optimizer, {"epoch": epoch},
                    {"epoch": epoch, "loss": loss})
    rows = history(tmp_path)
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert [float(r["loss"]) for r in rows] == [0.9, 0.7, 0.6]
    assert [r["epoch"] for r in _read_history(tmp_path / "history.csv")] == [1, 2, 3]
    assert json.loads((tmp_path / "state.json").read_text())["epoch"] == 3
