"""The model zoo: named, configured models and their released weights.

``load(name)`` builds a zoo model and loads its weights. An entry pairs an architecture of
:mod:`keras_liverseg.models` with the configuration a set of weights was trained in
(input size, context slices, classes, HU window), so the preprocessing travels with the
weights. Each released set of weights has a model card in the repository's ``zoo/`` folder.
"""

from keras_liverseg.zoo.catalog import ZooEntry, entries, get_entry
from keras_liverseg.zoo.loading import WeightsNotAvailable, load, sha256_of

__all__ = ["WeightsNotAvailable", "ZooEntry", "entries", "get_entry", "load", "sha256_of"]
