"""to_canonical / from_canonical: exact, world-preserving reorientation."""

from __future__ import annotations

import itertools

import nibabel as nib
import numpy as np
import pytest
from geometry import rotation

from keras_liverseg.io import (
    CANONICAL_AXCODES,
    InputError,
    check_affine,
    from_canonical,
    to_canonical,
)


def _affine(axcodes, zooms=(0.7, 0.9, 2.5), offset=(10.0, -20.0, 30.0), rotation=None):
    ornt = nib.orientations.axcodes2ornt(axcodes)
    affine = np.zeros((4, 4))
    affine[3, 3] = 1.0
    for axis, (world, flip) in enumerate(ornt):
        affine[int(world), axis] = flip * zooms[axis]
    if rotation is not None:
        affine[:3, :3] = rotation @ affine[:3, :3]
    affine[:3, 3] = offset
    return affine


ORIENTATIONS = [
    ("R", "A", "S"),
    ("L", "P", "S"),
    ("P", "L", "S"),
    ("L", "A", "I"),
    ("S", "R", "A"),
    ("I", "P", "R"),
    ("A", "S", "L"),
]


@pytest.mark.parametrize("axcodes", ORIENTATIONS)
@pytest.mark.parametrize("oblique", [False, True])
def test_round_trip_keeps_every_voxel_at_its_world_position(axcodes, oblique):
    turn = rotation(25, 0) @ rotation(-15, 2) if oblique else None
    affine = _affine(axcodes, rotation=turn)
    volume = np.random.default_rng(0).random((5, 6, 7))
    assert nib.aff2axcodes(affine) == axcodes
    canonical, canonical_affine, reorientation = to_canonical(volume, affine)
    assert nib.aff2axcodes(canonical_affine) == CANONICAL_AXCODES
    assert np.shares_memory(canonical, volume)  # a view, no copy
    for index in itertools.product(range(5), range(6), range(7)):
        world = affine @ [*index, 1.0]
        c_index = np.linalg.solve(canonical_affine, world)[:3]
        assert np.allclose(c_index, np.round(c_index), atol=1e-6)
        assert canonical[tuple(np.round(c_index).astype(int))] == volume[index]
    back = from_canonical(canonical, reorientation)
    assert back.shape == volume.shape and np.array_equal(back, volume)
    assert reorientation.canonical_shape == canonical.shape
    assert reorientation.original_axcodes == nib.aff2axcodes(affine)


def test_canonical_axes_are_posterior_left_superior():
    """rows run anterior->posterior, columns right->left, slices inferior->superior."""
    volume = np.zeros((3, 3, 3))
    canonical, affine, _ = to_canonical(volume, np.eye(4))  # RAS input
    row, col, slc = (affine[:3, i] for i in range(3))
    assert row[1] < 0 and col[0] < 0 and slc[2] > 0


def test_trailing_axes_are_carried():
    affine = _affine(("L", "P", "S"))
    probs = np.random.default_rng(1).random((4, 5, 6, 3))
    canonical, _, reorientation = to_canonical(probs, affine)
    assert canonical.shape == (5, 4, 6, 3)
    assert np.array_equal(from_canonical(canonical, reorientation), probs)


def test_identity_for_canonical_input():
    affine = _affine(CANONICAL_AXCODES)
    volume = np.arange(24).reshape(2, 3, 4)
    canonical, canonical_affine, reorientation = to_canonical(volume, affine)
    assert reorientation.is_identity
    assert np.array_equal(canonical, volume) and np.allclose(canonical_affine, affine)


@pytest.mark.parametrize(
    "affine",
    [
        np.diag([1.0, 1.0, 0.0, 1.0]),
        np.full((4, 4), np.nan),
        np.eye(3),
        np.array([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1.0]]),
    ],
)
def test_unusable_affines_are_input_errors(affine):
    with pytest.raises(InputError):
        check_affine(affine)
    with pytest.raises(InputError):
        to_canonical(np.zeros((2, 2, 2)), affine)


def test_from_canonical_checks_the_shape():
    _, _, reorientation = to_canonical(np.zeros((2, 3, 4)), np.eye(4))
    with pytest.raises(ValueError, match="canonical"):
        from_canonical(np.zeros((2, 3, 4)), reorientation)
