"""Synthetic abdominal CT ("phantoms") with liver and liver-tumor labels.

:func:`generate_case` draws one patient and one scan from a seed; :func:`write_lits_dataset`
writes cases as NIfTI pairs in the LiTS layout (``liverseg sample-data`` on the command line).

Conventions:

* Arrays are in NIfTI voxel order (X, Y, Z) with axial slices along Z; ``affine`` maps voxel
  indices to world millimetres in the RAS+ convention of NIfTI/nibabel (world x grows
  towards the patient's Right, y Anterior, z Superior), so the liver, on the patient's right,
  has a larger world x than the body's centre.
* The array may be stored "RAS-style" (affine diagonal +,+,+) or "LPS-style" (-,-,+; DICOM
  order), sometimes with z reversed; the array is flipped together with its affine, so every
  organ keeps its world position. ``meta["orientation"]`` gives the axis codes.
* Labels follow LiTS: 0 background, 1 liver (intrahepatic vessels included, gallbladder and
  IVC excluded), 2 tumor (always inside the liver). Generator 2.0 adds the hard negatives a
  real liver has around it, all background: fat in the fissures, at the hilum, in the
  gallbladder fossa and between the liver and the wall, and bowel pressed against the
  inferior tip (2.1 adds the periportal fat sheath around the portal vein's first branches
  inside the liver; 2.2 lets a large mass under the capsule bulge out of the liver's
  outline; 2.3 adds a fluid-filled loop against the liver's lower surface in most cases;
  2.4 a small fat junction with branching clefts where the fissures meet the left portal
  vein);
  and the scanner's variety (streaks, thick slices, coarse in-plane resolution to 9 mm
  pixels, randomised appearance as SynthSeg does: Billot et al., MedIA 2023).
* Same seed and arguments give identical arrays, affine and meta;
  :data:`GENERATOR_VERSION` changes whenever that output changes.

The modules, one job each: ``patient`` (body habitus and organ layout), ``canvas`` (coarse
grid, partial-volume painting), ``fields`` (implicit shapes, smooth noise), ``body`` (outline,
wall, diaphragm, lungs, heart), ``skeleton`` (spine, ribs, back muscles), ``organs``,
``bowel``, ``liver``, ``lesions``, ``intensities`` (HU per tissue and phase), ``scanner``
(geometry, slice profile, PSF, artefacts, resolution and appearance randomisation, noise,
orientation) and ``dataset`` (NIfTI output).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from keras_liverseg.phantom import anatomy, intensities, lesions, scanner
from keras_liverseg.phantom.canvas import Canvas
from keras_liverseg.phantom.patient import sample_patient

__all__ = [
    "GENERATOR_VERSION",
    "PhantomCase",
    "case_seed",
    "generate_case",
    "write_lits_dataset",
]

GENERATOR_VERSION = "2.4.0"


@dataclass
class PhantomCase:
    """One synthetic CT in NIfTI voxel order (X, Y, Z).

    ``volume`` int16 HU; ``labels`` uint8 (0 background, 1 liver, 2 tumor); ``affine`` maps
    voxel indices to RAS+ world millimetres (the array is flipped together with it);
    ``tissues`` uint8 dominant tissue per voxel (names in
    :data:`~keras_liverseg.phantom.intensities.TISSUES`, for checks and analysis);
    ``meta`` a JSON-ready dict (phase, spacing, orientation, patient, lesions...).
    """

    volume: np.ndarray
    labels: np.ndarray
    affine: np.ndarray
    meta: dict = field(default_factory=dict)
    tissues: np.ndarray | None = None


def case_seed(seed: int, index: int) -> int:
    """The seed of case ``index`` of a dataset drawn with ``seed`` (independent streams)."""
    ss = np.random.SeedSequence(entropy=int(seed), spawn_key=(int(index),))
    return int(ss.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def generate_case(
    seed: int,
    shape: tuple[int, int, int] = (512, 512, 100),
    *,
    phase: str | None = None,
    spacing: tuple[float, float, float] | None = None,
    n_lesions: int | None = None,
    lesion_kinds: Sequence[str] | None = None,
    orientation: str | None = None,
) -> PhantomCase:
    """Draw one synthetic abdominal CT; identical output for identical arguments.

    ``shape`` is the array shape (X, Y, Z); the field of view is drawn in millimetres, so
    small shapes give coarse pixels of the same anatomy. ``phase`` (one of
    :data:`~keras_liverseg.phantom.intensities.PHASES`), ``spacing`` (x, y, z mm),
    ``n_lesions``, ``lesion_kinds`` and ``orientation`` (array axis codes such as ``"RAS"``
    or ``"LPS"``) override the random draws.
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3 or min(shape) < 2:
        raise ValueError(f"shape must be three sizes >= 2, got {shape}")
    # a seventh stream (2.2.0's bulging masses) and an eighth (2.3.0's fluid-filled loop
    # against the liver) leave the first six as they were
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(int(seed)).spawn(8)]
    r_patient, r_scan, r_hu, r_paint, r_lesion, r_noise, r_bulge, r_contact = streams
    patient = sample_patient(r_patient)
    acq = scanner.sample_acquisition(r_scan, shape, patient, spacing)
    if orientation is not None:
        acq.flips = scanner.flips_from_code(orientation)
    if phase is None:
        phase = str(r_hu.choice(intensities.PHASES, p=[0.2, 0.25, 0.55]))
    table = intensities.sample_table(r_hu, phase, patient.steatosis_hu, acq.domain)
    canvas = Canvas(*scanner.coarse_axes(acq), table=table)
    if acq.table:
        scanner.paint_table(canvas, patient, r_paint)
    liver, anatomy_meta = anatomy.paint_patient(canvas, patient, r_paint, r_contact)
    tumors = lesions.paint_lesions(canvas, r_lesion, phase, acq.offset, n_lesions, lesion_kinds,
                                   bulge_rng=r_bulge)
    arrays = scanner.acquire(canvas, acq, r_noise)
    (volume, labels, tissues), affine = scanner.orient(list(arrays), acq)
    meta = {
        "generator_version": GENERATOR_VERSION,
        "seed": int(seed),
        "phase": phase,
        **acq.as_meta(),
        "patient": patient.as_meta(),
        "liver_hu_mean": round(table["liver"].mean, 1),
        "anatomy": anatomy_meta,
        "lesions": tumors,
    }
    return PhantomCase(volume=volume, labels=labels, affine=affine, meta=meta, tissues=tissues)


def write_lits_dataset(out_dir, cases: int, seed: int, shape=(512, 512, 100), **options) -> dict:
    """Write ``cases`` phantoms as LiTS NIfTI pairs + ``phantoms.json`` (see :mod:`.dataset`)."""
    from keras_liverseg.phantom.dataset import write_lits_dataset as write

    return write(out_dir, cases, seed, shape, **options)
