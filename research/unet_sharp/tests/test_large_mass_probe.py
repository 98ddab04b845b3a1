"""large_mass_probe.py: its cases hold one large mass at the wanted site, drawn with and
without generator 2.2's bulge, and the shares it prints partition the region."""

from __future__ import annotations

import numpy as np
import pytest
from research_scripts import load_script

probe = load_script("large_mass_probe")


@pytest.mark.slow
def test_draw_keeps_the_wanted_sites_and_the_bulge_is_new_tumor():
    cases = probe.draw(range(10), (96, 96, 40), {"subcapsular", "dome"})
    assert cases, "no subcapsular or dome mass in 10 seeds"
    assert any(c["bulge"].any() for c in cases)
    for c in cases:
        assert c["mass"]["site"] in ("subcapsular", "dome")
        assert c["mass"]["diameter_mm"] >= 40
        assert np.array_equal(c["2.2"].volume.shape, c["flat"].volume.shape)
        assert (c["2.2"].labels[c["bulge"]] == 2).all()
        assert (c["flat"].labels[c["bulge"]] == 0).all()
        if c["bulge"].any():  # a bulge the meta records, and a different scan
            assert c["mass"]["bulge_ml"] > 0
            assert not c["same"]
        elif "bulge_ml" not in c["mass"]:  # no bulge drawn: the very same scan
            assert c["same"]


def test_shares_partition_the_region():
    pred = np.array([0, 1, 2, 2, 1, 0, 2])
    where = np.array([1, 1, 1, 1, 0, 0, 0], dtype=bool)
    tumor, liver, background = probe.shares(pred, where)
    assert (tumor, liver, background) == (0.5, 0.25, 0.25)
    assert probe.shares(pred, np.zeros(7, dtype=bool)) == (0.0, 0.0, 0.0)
