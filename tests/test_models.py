"""Every architecture: faithful parameter counts, shapes, ranges, saving, pruning."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from model_cases import CASES, TINY, architecture, forward

from keras_liverseg import models

RNG = np.random.default_rng(1)


def trainable(model: keras.Model) -> int:
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


# MODELS.md, "Parameter counts that pin the architectures down".
NB3 = {"input_shape": (256, 256, 3), "num_classes": 1}
NB1 = {"input_shape": (256, 256, 1), "num_classes": 1}
PAPER_COUNTS = [
    ("unet", NB3, 7_852_545),
    ("unet_pp", NB3, 9_163_329),
    ("unet_sharp", {**NB3, "level": 1, "deep_supervision": True}, 103_041),
    ("unet_sharp", {**NB3, "level": 2, "deep_supervision": True}, 556_002),
    ("unet_sharp", {**NB3, "level": 3, "deep_supervision": True}, 2_531_139),
    ("unet_sharp", {**NB3, "level": 4, "deep_supervision": True}, 9_716_388),
    (
        "unet_sharp",
        {**NB3, "deep_supervision": True, "full_scale_from_bottleneck": True},
        10_748_580,
    ),
    ("isc_unet", {**NB1, "variant": "skip"}, 7_765_409),
    ("isc_unet", {**NB1, "variant": "skip+concat"}, 8_289_697),
    ("unet", {**NB1, "upsampling": "transpose", "batch_norm": False}, 7_759_521),
]


@pytest.mark.parametrize(
    "name, config, expected", PAPER_COUNTS, ids=[f"{n}-{c}" for n, c, _ in PAPER_COUNTS]
)
def test_trainable_parameters_match_the_papers(name, config, expected):
    assert trainable(models.build(name, **config)) == expected


def sample(shape, batch=2):
    return RNG.uniform(-400, 400, size=(batch, *shape)).astype("float32")


def build_case(case, input_shape, num_classes=3):
    config = dict(CASES[case])
    channels = num_classes if case == "es_unet_pp_encoder" else input_shape[-1]
    return models.build(
        architecture(case),
        input_shape=(*input_shape[:2], channels),
        num_classes=num_classes,
        filters=TINY,
        **config,
    )


def check_outputs(model, outputs, x, num_classes):
    outputs = outputs if isinstance(outputs, dict) else {"mask": outputs}
    assert set(outputs) == set(model.output_names)
    h, w = x.shape[1:3]
    for name, y in outputs.items():
        assert np.all(np.isfinite(y)), name
        if name.startswith("cls_"):
            assert y.shape == (x.shape[0], 2)
            np.testing.assert_allclose(y.sum(-1), 1, atol=1e-5)
        elif name.startswith("enc_"):
            assert y.shape[0] == x.shape[0]
        else:
            level = int(name.split("_")[1]) if name.startswith("de_") else 0
            assert y.shape == (x.shape[0], h >> level, w >> level, num_classes), name
            assert y.min() >= 0 and y.max() <= 1
            np.testing.assert_allclose(y.sum(-1), 1, atol=1e-5)  # softmax


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("input_shape", [(32, 32, 1), (48, 64, 3)])
def test_forward_pass(case, input_shape):
    model = build_case(case, input_shape)
    x = sample(model.inputs[0].shape[1:])
    check_outputs(model, forward(model, x), x, 3)


# the architectures with bilinear upsampling, kept small: XLA compiles slowly on a CPU
@pytest.mark.slow
@pytest.mark.parametrize("name, options", [("unet_sharp", {"level": 2}), ("unet3p", {})])
def test_a_compiled_train_step_under_mixed_precision(name, options):
    """XLA with bfloat16 compute (what model.fit does by default on a TF GPU machine with a
    mixed policy): TensorFlow's bilinear resize gradient is float32 (keras-team/keras#20931)
    and used to stop the compile with "Seen floating point types of different precisions"."""
    policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = models.build(name, input_shape=(32, 32, 1), num_classes=3, filters=TINY,
                             **options)
    finally:
        keras.mixed_precision.set_global_policy(policy)
    x = sample(model.inputs[0].shape[1:])
    targets = {  # one-hot targets of each head's shape (decoder heads, classification guide)
        name: keras.ops.one_hot(RNG.integers(0, out.shape[-1], (x.shape[0], *out.shape[1:-1])),
                                out.shape[-1])
        for name, out in zip(model.output_names, model.outputs, strict=True)
    }
    if len(targets) == 1:
        (targets,) = targets.values()
    model.compile(optimizer="adam", loss="categorical_crossentropy", jit_compile=True)
    history = model.fit(x, targets, epochs=1, batch_size=x.shape[0], verbose=0)
    assert np.isfinite(history.history["loss"][-1])


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(CASES))
def test_keras_file_roundtrip_in_safe_mode(case, tmp_path):
    model = build_case(case, (32, 32, 1))
    x = sample(model.inputs[0].shape[1:])
    path = tmp_path / f"{case}.keras"
    model.save(path)
    clone = keras.saving.load_model(path, safe_mode=True)
    expected, actual = forward(model, x), forward(clone, x)
    if not isinstance(expected, dict):
        expected, actual = {"mask": expected}, {"mask": actual}
    for name in expected:
        np.testing.assert_array_equal(expected[name], actual[name])


def test_one_sigmoid_channel_for_one_class():
    model = models.unet_sharp(input_shape=(32, 32, 1), num_classes=1, filters=TINY)
    y = model.predict(sample((32, 32, 1)), verbose=0)
    assert y.shape == (2, 32, 32, 1) and 0 <= y.min() and y.max() <= 1


@pytest.mark.slow
@pytest.mark.parametrize("name", ["unet_pp", "unet_sharp", "es_unet_pp"])
def test_prune_keeps_the_head_and_its_weights(name):
    config = {"deep_supervision": True}
    if name == "unet_sharp":
        config["classification_guide"] = True
    model = models.build(name, input_shape=(32, 32, 1), num_classes=3, filters=TINY, **config)
    x = sample((32, 32, 1))
    full = model.predict(x, verbose=0)
    sizes = []
    for level in (1, 2, 3, 4):
        pruned = models.prune(model, level)
        out = pruned.predict(x, verbose=0)
        head = "mask" if level == 4 else f"ds_0_{level}"
        mask = out["mask"] if isinstance(out, dict) else out
        np.testing.assert_array_equal(mask, full[head])
        if name == "unet_sharp":
            np.testing.assert_array_equal(out["cls_mask"], full[f"cls_{head}"])
        sizes.append(pruned.count_params())
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1] / 10


def test_prune_needs_deep_supervision():
    with pytest.raises(ValueError, match="deep_supervision"):
        models.prune(models.unet(input_shape=(32, 32, 1), filters=TINY), 1)
    model = models.unet_pp(input_shape=(32, 32, 1), filters=TINY, deep_supervision=True)
    with pytest.raises(ValueError, match="level"):
        models.prune(model, 5)


def test_inference_model_applies_the_classification_gate():
    model = models.unet_sharp(
        input_shape=(32, 32, 1),
        num_classes=1,
        filters=TINY,
        deep_supervision=True,
        classification_guide=True,
    )
    x = sample((32, 32, 1), batch=4)
    out = model.predict(x, verbose=0)
    gated = models.inference_model(model).predict(x, verbose=0)
    decision = out["cls_mask"].argmax(-1)[:, None, None, None]
    np.testing.assert_allclose(gated, out["mask"] * decision, atol=1e-6)


def test_preprocessing_travels_with_the_model():
    model = models.mu_net(input_shape=(48, 32, 3), filters=TINY)
    pre = models.preprocessing_of(model)
    assert pre.hu_window == (-250.0, 250.0)  # mU-Net's window
    assert pre.input_size == (48, 32) and pre.context_slices == 3
    assert pre.classes == ("background", "liver", "tumor")
    assert models.preprocessing_of(models.es_unet_pp(filters=TINY)).hu_window == (-100, 400)


@pytest.mark.parametrize("shape", [(100, 256, 1), (256, 250, 1), (256, 256), (0, 16, 1)])
def test_bad_input_shapes_are_clear_errors(shape):
    with pytest.raises(ValueError, match="input_shape"):
        models.unet(input_shape=shape)


def test_every_registered_architecture_has_a_test_case():
    """A new architecture is one module and its registration: the model tests build every
    case of ``model_cases.CASES``, so it needs one there."""
    from test_vnet import VNETS  # the 3D family has its own tests (volumes, not slices)

    covered = {architecture(case) for case in CASES} | set(VNETS)
    missing = sorted(set(models.available()) - covered)
    assert not missing, f"add a case to tests/model_cases.py for {missing}"


def test_the_registry_carries_each_papers_loss_and_two_stage_training():
    from keras_liverseg import losses
    from keras_liverseg.models import registry

    assert isinstance(registry.paper_loss("unet_sharp"), losses.MixedLoss)  # UNet#
    assert isinstance(registry.paper_loss("vnet_sharp"), losses.MixedLoss)  # V-Net#
    assert isinstance(registry.paper_loss("mu_net"), losses.SoftmaxMSELoss)  # mU-Net
    others = set(models.available()) - {"unet_sharp", "vnet_sharp", "mu_net"}
    assert all(type(registry.paper_loss(name)) is losses.SegLoss for name in others)
    assert registry.paper_loss("unet_sharp") is not registry.paper_loss("unet_sharp")  # new
    assert [n for n in models.available() if registry.trains_in_two_stages(n)] == ["es_unet_pp"]
    assert registry.architecture("unet").builder is models.unet
    with pytest.raises(ValueError, match="available"):
        registry.paper_loss("segformer")


def test_unknown_architecture_and_options():
    with pytest.raises(ValueError, match="available"):
        models.build("segformer")
    with pytest.raises(ValueError, match="level"):
        models.unet_sharp(level=5)
    with pytest.raises(ValueError, match="variant"):
        models.isc_unet(variant="concat")
    with pytest.raises(ValueError, match="upsampling"):
        models.unet(upsampling="nearest")
    with pytest.raises(ValueError, match="filters"):
        models.unet(filters=(8, 16, 32))


def test_unet_sharp_full_scale_sources_follow_eq1():
    from keras_liverseg.models.unet_sharp import full_scale_sources

    assert full_scale_sources(0, 2) == [(2, 0)]
    assert full_scale_sources(0, 4) == [(3, 1), (2, 2)]
    assert full_scale_sources(0, 4, from_bottleneck=True) == [(4, 0), (3, 1), (2, 2)]
    assert full_scale_sources(1, 3) == [(3, 1)]
    assert full_scale_sources(2, 1) == []
