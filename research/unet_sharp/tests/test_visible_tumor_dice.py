"""research/unet_sharp/visible_tumor_dice.py: which reference lesions the CT shows."""

from __future__ import annotations

import numpy as np
from research_scripts import load_script


def test_visible_mask_keeps_contrasted_lesions_large_enough():
    script = load_script("visible_tumor_dice")
    labels = np.zeros((40, 40, 10), np.uint8)
    labels[2:38, 2:38] = 1
    volume = np.full(labels.shape, 100.0, np.float32)
    labels[5:15, 5:15, 2:8] = 2  # 600 voxels, 40 HU darker: visible
    volume[5:15, 5:15, 2:8] = 60.0
    labels[20:30, 20:30, 2:8] = 2  # as large, 5 HU darker: hidden
    volume[20:30, 20:30, 2:8] = 95.0
    labels[32:34, 5:7, 2:4] = 2  # 8 voxels, 60 HU darker but too small: hidden
    volume[32:34, 5:7, 2:4] = 40.0
    visible, hidden = script.visible_mask(volume, labels, 1.0, 10.0, 500.0)
    assert visible.sum() == 600 and visible[10, 10, 5]
    assert hidden.sum() == 600 + 8 and hidden[25, 25, 5] and hidden[32, 5, 2]
    visible, hidden = script.visible_mask(volume, labels, 1.0, 3.0, 0.0)
    assert visible.sum() == 1208 and not hidden.any()
