"""research/unet_sharp/decision_sweep.py: the decision rules that turn probabilities into labels."""

from __future__ import annotations

import numpy as np
from research_scripts import load_script


def _script():
    return load_script("decision_sweep")


def _probabilities() -> np.ndarray:
    probs = np.zeros((5, 5, 1, 3), np.float32)
    probs[..., 0] = 1.0
    probs[2, 2, 0] = [0.1, 0.3, 0.6]  # confident organ, tumor
    probs[2, 3, 0] = [0.7, 0.3, 0.0]  # unsure organ next to it
    probs[0, 0, 0] = [0.7, 0.3, 0.0]  # unsure organ on its own
    return probs


def test_organ_rules():
    script = _script()
    probs = _probabilities()
    assert script.parse_organ("argmax") is None
    assert script.parse_organ("0.4") == 0.4
    assert script.parse_organ("connected:0.25") == ("connected", 0.25)

    argmax = script.decide(probs, None, None)[..., 0]
    assert argmax[2, 2] == 2 and (argmax > 0).sum() == 1
    threshold = script.decide(probs, 0.25, None)[..., 0]
    assert threshold[2, 3] == 1 and threshold[0, 0] == 1
    connected = script.decide(probs, ("connected", 0.25), None)[..., 0]
    assert connected[2, 3] == 1 and connected[0, 0] == 0 and connected[2, 2] == 2
    assert script.decide(probs, ("connected", 0.5), None)[..., 0].sum() == 2
    assert script._rule(("connected", 0.25)) == "argmax + connected >= 0.25"


def test_tumor_threshold():
    probs = _probabilities()
    probs[2, 2, 0] = [0.1, 0.6, 0.3]
    script = _script()
    assert script.decide(probs, None, None)[2, 2, 0] == 1
    assert script.decide(probs, None, 0.3)[2, 2, 0] == 2
