"""The README's fine-tuning example: zoo model + package losses and metrics + model.fit."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from synthetic import blob_case

from keras_liverseg import losses, metrics, zoo


def slices(seed: int, count: int = 8):
    """``count`` axial 32x32 slices with 3 neighbours as channels, and their labels."""
    image, labels, _ = blob_case(seed, shape=(32, 32, count + 2))
    x = np.stack([image[:, :, k:k + 3] for k in range(count)]).astype("float32")
    return x, labels[:, :, 1:count + 1].transpose(2, 0, 1)


@pytest.mark.slow
def test_fine_tune_a_zoo_model_with_fit(tmp_path):
    model = zoo.load("unet_sharp", weights=None, input_shape=(32, 32, 3),
                     filters=(4, 8, 16, 32, 64), decoder_heads=True, classification_guide=True)
    head_losses, head_weights = losses.deep_supervision_losses(model, losses.MixedLoss())
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss=head_losses,
                  loss_weights=head_weights, metrics={"mask": metrics.lits_metrics(3)})
    x, labels = slices(0)
    y = losses.deep_supervision_targets(model, labels)
    assert set(y) == set(head_losses)
    history = model.fit(x, y, epochs=6, batch_size=4, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert "mask_dice_liver" in history.history

    path = tmp_path / "tuned.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(reloaded.predict(x, verbose=0)["mask"],
                               model.predict(x, verbose=0)["mask"], atol=1e-6)
