"""Paint a whole synthetic patient onto a canvas, in anatomical order.

Order matters (later shapes carve earlier ones): table, body wall and cavity, diaphragm and
lungs, back muscles and skeleton, bowel, retroperitoneal and upper-abdominal organs, liver
(with its fat clefts and vessels), the bowel segment that lies against the liver's inferior
surface (placed on the painted liver, so it touches it without entering the label) and, from
generator 2.3.0, a fluid-filled loop against it (drawn from its own stream), the
gallbladder in its fossa and the great vessels (the IVC runs through the caudate lobe),
then lesions (see :mod:`.lesions`).
"""

from __future__ import annotations

import numpy as np

from keras_liverseg.phantom import skeleton
from keras_liverseg.phantom.body import Body
from keras_liverseg.phantom.bowel import paint_bowel, paint_fluid_contact, paint_liver_contact
from keras_liverseg.phantom.canvas import Canvas
from keras_liverseg.phantom.liver import Liver
from keras_liverseg.phantom.organs import Organs
from keras_liverseg.phantom.patient import Patient

__all__ = ["paint_patient"]


def paint_patient(
    canvas: Canvas, patient: Patient, rng: np.random.Generator, contact_rng: np.random.Generator
) -> tuple[Liver, dict]:
    """Paint every organ of ``patient``; returns the liver (for lesions) and meta.

    ``contact_rng`` draws the fluid-filled loop against the liver (2.3.0), so that the
    anatomy ``rng`` draws is 2.2.0's."""
    body = Body(canvas, patient, rng)
    body.paint(rng)
    skeleton.paint_skeleton(canvas, body, rng)
    organs = Organs(canvas, body, rng)
    liver = Liver(canvas, body, organs, rng)
    meta = {"bowel": paint_bowel(organs, rng)}
    organs.paint_stomach_duodenum(liver.core_sdf)
    organs.paint_pancreas()
    organs.paint_spleen()
    organs.paint_kidneys()
    meta["liver"] = liver.paint()
    meta["bowel_contact"] = paint_liver_contact(organs, rng)
    meta["fluid_contact"] = paint_fluid_contact(organs, contact_rng)
    meta["gallbladder"] = organs.paint_gallbladder(liver.sdf)
    organs.paint_vessels()
    return liver, meta
