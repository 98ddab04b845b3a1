"""Draw one synthetic patient: body habitus and the positions and sizes of the organs.

All lengths are millimetres in the patient frame of :mod:`keras_liverseg.phantom.canvas`
(x to the patient's right, y anterior, z superior, origin at the right dome apex on the
midline). Organs are placed relative to the body cavity and the spine, so they scale with
the patient; every quantity is jittered so no two patients look alike.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

__all__ = ["Patient", "sample_patient"]


@dataclass
class Patient:
    """Sampled body and organ layout of one synthetic patient (mm, patient frame)."""

    habitus: float  # 0 thin .. 1 obese
    half_width: float  # W: lateral half width of the body at the liver
    front: float  # Da: centre to anterior skin
    back: float  # Dp: centre to posterior skin
    p_front: float  # superellipse exponents
    p_back: float
    skin: float
    fat: float  # subcutaneous fat thickness (lateral/anterior)
    fat_back: float
    visceral_fat: float  # 0..1: how much fat between the abdominal organs
    wall_front: float  # muscle wall thickness
    wall_side: float
    wall_back: float
    belly: float  # anterior protrusion of the lower abdomen (fraction)
    taper: tuple[float, float]  # linear, quadratic change of body size along z
    # spine
    spine_y: float  # vertebral body centre
    vb_half: tuple[float, float]  # lateral, AP semi-axes of the vertebral body
    canal_r: float
    vertebra_period: float
    vertebra_phase: float
    paraspinal: tuple[float, float]  # lateral, AP semi-axes of each erector spinae mass
    psoas_r: float
    lordosis: float
    # thorax / diaphragm
    dome_left: float  # z of the left dome apex (right dome apex is 0)
    dome_drop: float  # how far the diaphragm falls towards the periphery
    recess_drop: float  # extra fall posteriorly (costophrenic recesses)
    heart: tuple[float, float, float]  # semi-axes
    # liver
    liver_height: float
    liver_scale: tuple[float, float]  # lateral, AP size relative to the cavity
    left_lobe: float  # size of the left lobe (0.3 small .. 1.3 reaching the spleen)
    tip_length: float  # how far the thin right-lobe crescent runs below the right lobe
    tip_thickness: float
    liver_bumpiness: float
    steatosis_hu: float
    cirrhosis: bool
    ascites: bool
    # other organs
    kidney_top: tuple[float, float]  # z of upper poles (right, left)
    kidney_size: tuple[float, float, float]
    kidney_x: float
    spleen: tuple[float, float, float]
    stomach_fill: float
    stomach_content: str
    oral_contrast: bool
    gallbladder: bool
    gallstones: bool
    pancreas_z: float
    aorta_r: float
    aorta_x: float
    ivc: tuple[float, float]
    bowel_gas: float  # fraction of bowel loops holding gas
    bowel_fluid: float  # fraction holding fluid (the rest are collapsed, soft tissue)
    extras: dict = field(default_factory=dict)

    @property
    def cavity_half_width(self) -> float:
        return self.half_width - self.skin - self.fat - self.wall_side

    @property
    def cavity_front(self) -> float:
        return self.front - self.skin - self.fat - self.wall_front

    @property
    def spine_front(self) -> float:
        """y of the anterior surface of the vertebral bodies."""
        return self.spine_y + self.vb_half[1]

    @property
    def liver_bottom(self) -> float:
        """Lowest z of the liver (tip of the right-lobe crescent)."""
        return -self.liver_height - self.tip_length

    def as_meta(self) -> dict:
        """JSON-ready summary."""
        out = {}
        for key, value in asdict(self).items():
            if isinstance(value, float):
                out[key] = round(value, 2)
            elif isinstance(value, tuple):
                out[key] = [round(float(v), 2) for v in value]
            else:
                out[key] = value
        return out


def sample_patient(rng: np.random.Generator) -> Patient:
    """Draw a patient; thin, average and obese bodies and normal variants all occur."""
    u = float(rng.beta(1.5, 1.7))  # habitus
    n = rng.normal
    W = float(np.clip(125 + 85 * u + n(0, 10), 110, 230))
    Da = float(np.clip(85 + 80 * u + n(0, 10), 70, 190))
    Db = float(np.clip(85 + 35 * u + n(0, 7), 70, 140))
    fat = float(np.clip(3 + 55 * u**1.4 + n(0, 6), 2, 80))
    wall_side = rng.uniform(7, 20)
    skin = rng.uniform(1.5, 3.0)
    fat_back = fat * rng.uniform(0.3, 0.8)
    para_depth = rng.uniform(20, 42) * (0.85 + 0.3 * u)
    vb_half = (rng.uniform(18, 25), rng.uniform(13, 18))
    canal_r = rng.uniform(7, 10)
    spine_y = -Db + skin + fat_back + para_depth + 8 + 2 * canal_r + 2 + vb_half[1]
    wc = W - skin - fat - wall_side
    liver_height = rng.uniform(110, 200) * (wc / 120) ** 0.3
    cirrhosis = bool(rng.random() < 0.1)
    tip_length = rng.uniform(10, 55)
    if rng.random() < 0.15:  # Riedel's lobe: a long tongue down the right flank
        tip_length += rng.uniform(30, 80)
    kidney_top_r = -rng.uniform(55, 105)
    kidney_top_l = kidney_top_r + rng.uniform(0, 30)
    big_spleen = 1.45 if rng.random() < 0.1 else 1.0
    content = str(rng.choice(["gas_fluid", "fluid", "food", "collapsed"], p=[0.4, 0.2, 0.2, 0.2]))
    return Patient(
        habitus=u,
        half_width=W,
        front=Da,
        back=Db,
        p_front=rng.uniform(1.9, 2.5),
        p_back=rng.uniform(2.3, 3.6),
        skin=skin,
        fat=fat,
        fat_back=fat_back,
        visceral_fat=float(np.clip(0.1 + 0.8 * u + n(0, 0.15), 0.03, 1.0)),
        wall_front=rng.uniform(6, 14),
        wall_side=wall_side,
        wall_back=rng.uniform(4, 10),
        belly=float(np.clip(rng.uniform(-0.05, 0.25) * (0.3 + u), -0.05, 0.3)),
        taper=(rng.uniform(-0.06, 0.1), rng.uniform(-0.04, 0.06)),
        spine_y=spine_y,
        vb_half=vb_half,
        canal_r=canal_r,
        vertebra_period=rng.uniform(30, 38),
        vertebra_phase=rng.uniform(0, 1),
        paraspinal=(rng.uniform(22, 36), para_depth * rng.uniform(0.55, 0.75)),
        psoas_r=rng.uniform(11, 28) * (0.8 + 0.3 * u),
        lordosis=rng.uniform(0.0, 25.0),
        dome_left=-rng.uniform(0, 30),
        dome_drop=rng.uniform(25, 55),
        recess_drop=rng.uniform(30, 80),
        heart=(rng.uniform(55, 75), rng.uniform(42, 58), rng.uniform(45, 60)),
        liver_height=float(liver_height),
        liver_scale=(rng.uniform(0.85, 1.1), rng.uniform(0.75, 1.0)),
        left_lobe=rng.uniform(0.3, 1.3) * (0.7 if cirrhosis else 1.0),
        tip_length=float(tip_length),
        tip_thickness=rng.uniform(10, 30),
        liver_bumpiness=rng.uniform(2, 7) * (2.0 if cirrhosis else 1.0),
        steatosis_hu=float(rng.uniform(10, 45)) if rng.random() < 0.12 else 0.0,
        cirrhosis=cirrhosis,
        ascites=bool(rng.random() < (0.4 if cirrhosis else 0.05)),
        kidney_top=(kidney_top_r, kidney_top_l),
        kidney_size=(rng.uniform(21, 29), rng.uniform(20, 27), rng.uniform(48, 62)),
        kidney_x=rng.uniform(62, 85) * (W / 170) ** 0.3,
        spleen=(
            rng.uniform(18, 30) * big_spleen,
            rng.uniform(40, 62) * big_spleen,
            rng.uniform(35, 58) * big_spleen,
        ),
        stomach_fill=rng.uniform(0.5, 1.3),
        stomach_content=content,
        oral_contrast=bool(rng.random() < 0.12),
        gallbladder=bool(rng.random() < 0.85),
        gallstones=bool(rng.random() < 0.15),
        pancreas_z=min(kidney_top_l, kidney_top_r) - rng.uniform(5, 35),
        aorta_r=rng.uniform(9, 14),
        aorta_x=-rng.uniform(5, 20),
        ivc=(rng.uniform(18, 32), rng.uniform(9, 15)),
        bowel_gas=rng.uniform(0.05, 0.45),
        bowel_fluid=rng.uniform(0.1, 0.5),
    )
