"""field_of_view.py --trace: the reference labels under each predicted lesion, on the scan's
own grid, its liver crop and its coarse copy."""

from __future__ import annotations

import numpy as np
from research_scripts import load_script

fov = load_script("field_of_view")


def _scan():
    """A 12x10x4 RAS scan: liver (5) in a block, a vein (64) inside it, cartilage (117)
    against it; the 'prediction' marks the vein and the cartilage as two lesions."""
    reference = np.zeros((12, 10, 4), np.int32)
    reference[2:10, 2:8] = 5
    reference[4:6, 4:6] = 64
    reference[10:12, 2:4] = 117
    return reference, np.diag([3.0, 3.0, 3.0, 1.0])


def test_lesions_on_the_full_grid_count_what_lies_under_them():
    reference, _ = _scan()
    predicted = np.where(np.isin(reference, (64, 117)), 2, 0)
    found = fov.reference_under_lesions(predicted, reference, 1, [])
    assert found == [{64: 16}, {117: 16}]


def test_a_coarse_lesion_counts_the_fine_voxels_under_it():
    reference, affine = _scan()
    _, _, plane = fov.references(reference, (reference == 5).astype(np.uint8), affine)["coarse"]
    assert plane == [0, 1]  # the axial plane of a RAS scan
    predicted = np.zeros((6, 5, 4), np.int32)
    predicted[2, 2, 0] = 2  # over fine voxels [4:6, 4:6, 0]: the vein
    predicted[5, 1:3, 1] = 2  # over fine voxels [10:12, 2:6, 1]: cartilage, then nothing
    found = fov.reference_under_lesions(predicted, reference, 2, plane)
    assert found == [{64: 4}, {0: 4, 117: 4}]


def test_the_crop_reference_is_cut_like_the_scan():
    reference, affine = _scan()
    liver = (reference >= 5).astype(np.uint8)
    crop, factor, _ = fov.references(reference, liver, affine)["crop"]
    volume_crop = fov.crop_to_mask_box(reference.astype(np.float32), liver, affine,
                                       liver >= 1, fov.MARGIN_MM)[0]
    assert factor == 1 and np.array_equal(crop, volume_crop.astype(np.int32))
