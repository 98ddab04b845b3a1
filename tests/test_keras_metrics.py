"""Streaming Keras metrics ClassDice / ClassIoU against the NumPy metrics."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
from jax_subprocess import jax_env

from keras_liverseg.metrics import dice, jaccard
from keras_liverseg.metrics.keras_metrics import LIVER, TUMOR, ClassDice, ClassIoU, lits_metrics


def _softmax_batch(rng, shape=(3, 16, 16), channels=3):
    logits = rng.normal(size=(*shape, channels)).astype("float32")
    probabilities = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    labels = rng.integers(0, channels, size=shape).astype("int32")
    return labels, probabilities


def _numpy_masks(labels, probabilities, class_ids, threshold=0.5):
    if probabilities.shape[-1] == 1:
        pred = probabilities[..., 0] >= threshold
    else:
        pred = np.isin(probabilities.argmax(-1), class_ids)
    return pred, np.isin(labels, class_ids)


def _value(metric) -> float:
    return float(keras.ops.convert_to_numpy(metric.result()))


@pytest.mark.parametrize("class_ids", [LIVER, TUMOR, (1,), 0])
def test_softmax_batch_matches_numpy(class_ids):
    rng = np.random.default_rng(0)
    labels, probabilities = _softmax_batch(rng)
    ids = (class_ids,) if isinstance(class_ids, int) else class_ids
    pred, true = _numpy_masks(labels, probabilities, ids)
    d, j = ClassDice(class_ids), ClassIoU(class_ids)
    d.update_state(labels, probabilities)
    j.update_state(labels[..., None], probabilities)  # (B, H, W, 1) labels work too
    assert _value(d) == pytest.approx(dice(pred, true), abs=1e-6)
    assert _value(j) == pytest.approx(jaccard(pred, true), abs=1e-6)


def test_sigmoid_output_scores_the_liver_organ():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, size=(2, 12, 12, 1))
    probabilities = rng.random((2, 12, 12, 1)).astype("float32")
    pred = probabilities[..., 0] >= 0.3
    true = labels[..., 0] >= 1
    metric = ClassDice(LIVER, threshold=0.3)
    metric.update_state(labels, probabilities)
    assert _value(metric) == pytest.approx(dice(pred, true), abs=1e-6)


def test_background_liver_softmax_scores_labels_1_and_2_as_liver():
    rng = np.random.default_rng(2)
    labels, probabilities = _softmax_batch(rng, channels=2)
    labels = rng.integers(0, 3, size=labels.shape)  # ground truth still holds tumors
    metric = ClassDice(LIVER)
    metric.update_state(labels, probabilities)
    pred = probabilities.argmax(-1) == 1
    assert _value(metric) == pytest.approx(dice(pred, labels >= 1), abs=1e-6)


def test_streams_over_batches_and_resets():
    rng = np.random.default_rng(3)
    batches = [_softmax_batch(rng) for _ in range(3)]
    metric = ClassDice(TUMOR)
    for labels, probabilities in batches:
        metric.update_state(labels, probabilities)
    all_labels = np.concatenate([b[0] for b in batches])
    all_probabilities = np.concatenate([b[1] for b in batches])
    pred, true = _numpy_masks(all_labels, all_probabilities, TUMOR)
    assert _value(metric) == pytest.approx(dice(pred, true), abs=1e-6)
    metric.reset_state()
    metric.update_state(*batches[0])
    pred, true = _numpy_masks(*batches[0], TUMOR)
    assert _value(metric) == pytest.approx(dice(pred, true), abs=1e-6)


def test_list_of_heads_is_averaged():
    rng = np.random.default_rng(4)
    labels, head_1 = _softmax_batch(rng)
    _, head_2 = _softmax_batch(rng)
    metric = ClassDice(LIVER)
    metric.update_state(labels, [head_1, head_2])
    pred, true = _numpy_masks(labels, (head_1 + head_2) / 2, LIVER)
    assert _value(metric) == pytest.approx(dice(pred, true), abs=1e-6)


def test_sample_weight_per_sample_and_per_pixel():
    rng = np.random.default_rng(5)
    labels, probabilities = _softmax_batch(rng)
    metric = ClassIoU(LIVER)
    metric.update_state(labels, probabilities, sample_weight=np.array([1.0, 0.0, 1.0]))
    pred, true = _numpy_masks(labels[[0, 2]], probabilities[[0, 2]], LIVER)
    assert _value(metric) == pytest.approx(jaccard(pred, true), abs=1e-6)

    weights = (rng.random(labels.shape) > 0.5).astype("float32")
    metric = ClassDice(LIVER)
    metric.update_state(labels, probabilities, sample_weight=weights[..., None])
    pred, true = _numpy_masks(labels, probabilities, LIVER)
    keep = weights > 0
    assert _value(metric) == pytest.approx(dice(pred[keep], true[keep]), abs=1e-6)


def test_empty_masks_score_one_like_the_numpy_metrics():
    labels = np.zeros((1, 8, 8), "int32")
    probabilities = np.zeros((1, 8, 8, 3), "float32")
    probabilities[..., 0] = 1.0
    for cls in (ClassDice, ClassIoU):
        metric = cls(TUMOR)
        metric.update_state(labels, probabilities)
        assert _value(metric) == 1.0
    metric = ClassDice(TUMOR)
    labels[0, 0, 0] = 2
    metric.update_state(labels, probabilities)
    assert _value(metric) == 0.0


def test_bad_arguments():
    with pytest.raises(ValueError, match="class_ids"):
        ClassDice(())
    with pytest.raises(ValueError, match="beyond"):
        ClassDice(TUMOR).update_state(np.zeros((1, 4, 4)), np.zeros((1, 4, 4, 2)))
    with pytest.raises(ValueError, match="y_true"):
        ClassDice().update_state(np.zeros((1, 2, 4, 4, 1)), np.zeros((1, 4, 4, 3)))
    with pytest.raises(ValueError, match="num_classes"):
        lits_metrics(4)


def test_config_round_trip_and_registered_name():
    metric = ClassDice(TUMOR, threshold=0.3, name="dice_tumor")
    config = metric.get_config()
    assert config["class_ids"] == [2] and config["threshold"] == 0.3
    clone = ClassDice.from_config(config)
    assert (clone.name, clone.class_ids, clone.threshold) == ("dice_tumor", (2,), 0.3)
    serialized = keras.saving.serialize_keras_object(ClassIoU(LIVER, name="iou_liver"))
    assert serialized["registered_name"] == "keras_liverseg>ClassIoU"
    restored = keras.saving.deserialize_keras_object(serialized)
    assert isinstance(restored, ClassIoU) and restored.class_ids == LIVER
    assert keras.saving.get_registered_object("keras_liverseg>ClassDice") is ClassDice


def test_lits_metrics_names():
    assert [m.name for m in lits_metrics(1)] == ["dice_liver", "iou_liver"]
    assert [m.name for m in lits_metrics(3)] == [
        "dice_liver",
        "iou_liver",
        "dice_tumor",
        "iou_tumor",
    ]


def _two_output_model():
    inputs = keras.Input((8, 8, 1))
    mask = keras.layers.Conv2D(3, 1, activation="softmax", name="mask")(inputs)
    aux = keras.layers.Conv2D(3, 3, padding="same", activation="softmax", name="aux_1")(inputs)
    return keras.Model(inputs, {"mask": mask, "aux_1": aux})


def test_compiled_per_output_on_a_deep_supervision_model():
    keras.utils.set_random_seed(0)
    model = _two_output_model()
    model.compile(
        loss={
            "mask": "sparse_categorical_crossentropy",
            "aux_1": "sparse_categorical_crossentropy",
        },
        metrics={"mask": lits_metrics(3), "aux_1": [ClassDice(LIVER, name="dice_liver")]},
    )
    rng = np.random.default_rng(6)
    x = rng.normal(size=(4, 8, 8, 1)).astype("float32")
    y = rng.integers(0, 3, size=(4, 8, 8))
    logs = model.evaluate(x, {"mask": y, "aux_1": y}, batch_size=2, verbose=0, return_dict=True)
    predictions = model.predict(x, verbose=0)
    for output, cls_name, ids in [
        ("mask", "liver", LIVER),
        ("mask", "tumor", TUMOR),
        ("aux_1", "liver", LIVER),
    ]:
        pred, true = _numpy_masks(y, predictions[output], ids)
        assert logs[f"{output}_dice_{cls_name}"] == pytest.approx(dice(pred, true), abs=1e-5)
    pred, true = _numpy_masks(y, predictions["mask"], TUMOR)
    assert logs["mask_iou_tumor"] == pytest.approx(jaccard(pred, true), abs=1e-5)


_JAX_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import keras
    from keras_liverseg.metrics.keras_metrics import LIVER, TUMOR, ClassDice, ClassIoU

    assert keras.backend.backend() == "jax"
    data = np.load(sys.argv[1])
    labels, probabilities = data["labels"], data["probabilities"]
    eager = ClassDice(TUMOR)
    eager.update_state(labels, probabilities)
    inputs = keras.Input(probabilities.shape[1:])
    model = keras.Model(inputs, keras.layers.Identity()(inputs))
    model.compile(loss="sparse_categorical_crossentropy",
                  metrics=[ClassDice(LIVER, name="dice_liver"), ClassIoU(TUMOR, name="iou_tumor")])
    logs = model.evaluate(probabilities, labels, batch_size=2, verbose=0, return_dict=True)
    print(json.dumps({"eager_dice_tumor": float(eager.result()),
                      "dice_liver": logs["dice_liver"], "iou_tumor": logs["iou_tumor"]}))
    """
)


@pytest.mark.slow
def test_runs_on_the_jax_backend(tmp_path):
    pytest.importorskip("jax")
    rng = np.random.default_rng(7)
    labels, probabilities = _softmax_batch(rng, shape=(4, 8, 8))
    np.savez(tmp_path / "batch.npz", labels=labels, probabilities=probabilities)
    env = jax_env()
    completed = subprocess.run(
        [sys.executable, "-c", _JAX_SCRIPT, str(tmp_path / "batch.npz")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    values = json.loads(completed.stdout.strip().splitlines()[-1])
    for key, ids, function in [
        ("eager_dice_tumor", TUMOR, dice),
        ("dice_liver", LIVER, dice),
        ("iou_tumor", TUMOR, jaccard),
    ]:
        pred, true = _numpy_masks(labels, probabilities, ids)
        assert values[key] == pytest.approx(function(pred, true), abs=1e-5), key


def test_compiled_metrics_survive_save_and_load(tmp_path):
    rng = np.random.default_rng(8)
    labels, probabilities = _softmax_batch(rng, shape=(4, 8, 8))
    inputs = keras.Input(probabilities.shape[1:])
    model = keras.Model(inputs, keras.layers.Identity(name="mask")(inputs))
    model.compile(loss="sparse_categorical_crossentropy", metrics=lits_metrics(3))
    before = model.evaluate(probabilities, labels, verbose=0, return_dict=True)
    model.save(tmp_path / "model.keras")
    restored = keras.models.load_model(tmp_path / "model.keras")
    after = restored.evaluate(probabilities, labels, verbose=0, return_dict=True)
    pred, true = _numpy_masks(labels, probabilities, TUMOR)
    assert after["dice_tumor"] == pytest.approx(dice(pred, true), abs=1e-6)
    assert after == pytest.approx(before)
