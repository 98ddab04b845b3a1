"""The model zoo: named, configured models and their released weights.

``load(name)`` builds a zoo model and loads its weights. An entry pairs an architecture of
:mod:`keras_liverseg.models` with the configuration a set of weights was trained in
(input size, context slices, classes, HU window), so the preprocessing travels with the
weights. The weights index (:mod:`.index`, a JSON file shipped in the package and served
by mirrors) lists each entry's released weights; :mod:`.download` finds them: bundled,
else cached, else downloaded and checked. Each released set of weights has a model card in
the repository's ``zoo/`` folder.
"""

from keras_liverseg.zoo.catalog import ZooEntry, entries, get_entry
from keras_liverseg.zoo.download import liverseg_home, sha256_of
from keras_liverseg.zoo.errors import (
    DownloadError,
    WeightsDoNotMatch,
    WeightsMismatch,
    WeightsNotAvailable,
    WeightsOffline,
)
from keras_liverseg.zoo.index import WeightsRecord
from keras_liverseg.zoo.loading import (
    default_weights,
    is_weights_path,
    load,
    postprocess_for,
    weights_record,
)

__all__ = [
    "DownloadError",
    "WeightsDoNotMatch",
    "WeightsMismatch",
    "WeightsNotAvailable",
    "WeightsOffline",
    "WeightsRecord",
    "ZooEntry",
    "default_weights",
    "entries",
    "get_entry",
    "is_weights_path",
    "liverseg_home",
    "load",
    "postprocess_for",
    "sha256_of",
    "weights_record",
]
