"""research/unet_sharp/junction_labels.py: how far the image moved where liver became
background."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
from research_scripts import load_script


def test_only_voxels_turned_from_liver_to_background_count():
    plain = SimpleNamespace(labels=np.array([1, 1, 1, 0, 2], np.uint8),
                            volume=np.array([60, 60, 60, -100, 40], np.int16))
    case = SimpleNamespace(labels=np.array([0, 0, 1, 0, 2], np.uint8),
                           volume=np.array([-90, 55, 10, -100, 40], np.int16))
    change = load_script("junction_labels").relabelled_change(case, plain)
    # the first two voxels: one shows the fat (150 HU), one does not (5 HU); the third
    # moved but stayed liver, the rest kept their labels
    assert change.tolist() == [150.0, 5.0]
