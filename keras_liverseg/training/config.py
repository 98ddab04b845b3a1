"""The settings of a training run."""

from __future__ import annotations

import json
import types
import typing
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from keras_liverseg.data.sampler import TASKS, check_fractions

STRATEGIES = ("auto", "one", "mirrored", "multi-worker")
LOSSES = ("paper", "dice_ce")
DEFAULT_BATCH_SLICES = 8
"""Slices per batch of a 2D model unless the run says otherwise."""
DEFAULT_BATCH_PATCHES = 2
"""Patches per batch of a 3D model unless the run says otherwise, nnU-Net's 3D default: one
32 x 128 x 128 patch of the zoo's V-Net# costs 130 GFLOP forward, as much as 14 slices of
the default 2D model (``benchmarks/bench_forward.py``'s count)."""


class ConfigError(ValueError):
    """A training-settings file or dict that is not a JSON object of the right fields and
    types; the message is one line that names the key."""


@dataclass
class TrainConfig:
    """Everything a run needs; the run folder keeps it as ``config.json``.

    Attributes:
        data: dataset folder (LiTS or MSD layout); ``None`` to train on ``phantoms`` alone.
        output: the run folder.
        model: zoo name (its architecture and configuration) to train.
        model_config: overrides of the zoo entry's builder configuration.
        task: ``"both"`` (3 classes: background, liver, tumor), ``"liver"`` (liver incl.
            tumor vs background, 2 classes) or ``"tumor"`` (tumor vs rest, 2 classes).
        epochs, steps_per_epoch, batch_size, learning_rate: the schedule (Adam, a linear
            warm-up over the first ``warmup`` of the run, then a cosine to 5 %).
            ``steps_per_epoch=None``: one pass over the training slices,
            ``ceil(training slices / batch_size)`` steps; for a 3D model one pass over the
            training voxels in patches, ``ceil(patches / batch_size)`` steps, where each
            volume counts the patches that tile it without overlap (on the model's voxel
            spacing). ``batch_size`` counts patches for a 3D model; ``None``:
            :data:`DEFAULT_BATCH_SLICES`, or :data:`DEFAULT_BATCH_PATCHES` for a 3D model.
        steps, minutes: a budget instead of ``epochs``: this many steps in all, or this much
            wall time after the first (compiling) step; epochs are then passes of
            ``steps_per_epoch`` steps (the last one cut short) and the warm-up and cosine
            run over the budget.
        warmup: share of the run over which the learning rate rises from 5 % to
            ``learning_rate``; ``None``: 0.05 with a ``steps`` or ``minutes`` budget, none
            for ``epochs`` (as before budgets existed).
        workers: sampler worker processes (``0``: threads in the training process), also
            the processes that draw ``phantoms`` and decode ``data``'s cases not cached yet.
        phantoms, phantom_seed, phantom_size: instead of ``data`` or beside its cases
            (whose ids must then differ), draw phantom cases ``volume-0 ..
            volume-{phantoms - 1}`` of dataset seed ``phantom_seed``
            (:func:`keras_liverseg.phantom.generate_case`, as ``liverseg sample-data
            --seed`` writes them) at ``phantom_size`` ``(X, Y, Z)`` voxels, in worker
            processes; with a ``split_file``, the phantoms it does not name are training
            cases.
        input_size: train the zoo model rebuilt for ``input_size x input_size`` slices (a 3D
            model: patches of its own depth and ``input_size x input_size`` in-plane).
        pixel_spacing: train the zoo model to read slices resampled to this in-plane
            spacing (mm), stored in the model (:class:`~keras_liverseg.layers.HUWindow`);
            ``None``: the entry's own (resize each slice to the input, if it has none).
        strategy: ``auto`` (mirrored with 2+ GPUs, else one device), ``one``, ``mirrored``,
            ``multi-worker`` (from ``TF_CONFIG``); TensorFlow only.
        mixed_precision: bfloat16 compute (float32 heads and losses).
        init: ``None``, ``"zoo:NAME"`` (that entry's default weights) or a weights path.
        validation_fraction, split_file, seed: the case split and the sampling seed.
        liver_fraction, tumor_fraction: foreground-aware sampling shares.
        loss: ``"paper"`` (the loss of the architecture's paper on every head) or
            ``"dice_ce"`` (soft Dice over the whole batch plus cross-entropy, as nnU-Net
            trains: a class absent from an image does not reward empty predictions).
        augment: use the default augmentation.
        clahe: with ``augment``, the probability of CLAHE on a slice (ES-UNet++).
        coarse: with ``augment``, for a model that reads slices at a pixel spacing, the
            probability that a slice is read as a 3-9 mm reconstruction would show it
            (:class:`~keras_liverseg.data.sampler.Augmentation`'s ``coarse``).
        validation_cases_max: at most this many validation volumes per epoch.
        encoder_epochs: ES-UNet++ only: epochs of the encoding UNet++ (default: a third of
            ``epochs``, at least 1).
        feature_supervision: ES-UNet++ only: Smooth-L1 on every encoder level
            (``"encoder"``, ES) or on the bottleneck only (``"bottleneck"``, BS).
        feature_weight: ES-UNet++ only: weight ``w2`` of the Smooth-L1 loss.
        liver_roi: train (and validate) on the liver's region of interest, the second
            stage of a cascade (default: on for ``task="tumor"`` and for zoo models that
            read the liver's region, such as ``unet_sharp_roi``).
        command: the command line that started the run (for the model card).
    """

    data: str | None
    output: str
    model: str = "unet_sharp"
    model_config: dict = field(default_factory=dict)
    task: str = "both"
    epochs: int = 10
    steps_per_epoch: int | None = None
    batch_size: int | None = None
    learning_rate: float = 1e-3
    strategy: str = "auto"
    mixed_precision: bool = False
    init: str | None = None
    validation_fraction: float = 0.2
    split_file: str | None = None
    seed: int = 0
    liver_fraction: float = 0.5
    tumor_fraction: float = 0.15
    loss: str = "paper"
    augment: bool = True
    clahe: float = 0.0
    coarse: float = 0.0
    validation_cases_max: int = 20
    encoder_epochs: int | None = None
    feature_supervision: str = "encoder"
    feature_weight: float = 1.0
    liver_roi: bool | None = None
    steps: int | None = None
    minutes: float | None = None
    warmup: float | None = None
    workers: int = 0
    phantoms: int | None = None
    phantom_seed: int = 0
    phantom_size: tuple[int, int, int] = (512, 512, 64)
    input_size: int | None = None
    pixel_spacing: float | None = None
    command: str = ""

    def __post_init__(self):
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {self.strategy!r}")
        if self.data is None and self.phantoms is None:
            raise ValueError("give data (a dataset folder), phantoms (a number of phantoms to "
                             "draw) or both")
        if self.batch_size is None:
            self.batch_size = DEFAULT_BATCH_PATCHES if self.volumetric else DEFAULT_BATCH_SLICES
        for name in ("epochs", "steps_per_epoch", "batch_size", "steps", "phantoms"):
            value = getattr(self, name)
            if value is not None and int(value) < 1:
                raise ValueError(f"{name} must be >= 1, got {value!r}")
        if self.steps is not None and self.minutes is not None:
            raise ValueError("give at most one budget: steps or minutes")
        if self.minutes is not None and not self.minutes > 0:
            raise ValueError(f"minutes must be > 0, got {self.minutes!r}")
        if self.minutes is not None and self.strategy == "multi-worker":
            # each worker would read its own clock and could stop at another step than the
            # others, leaving them waiting in a collective for ever
            raise ValueError("a time budget (minutes) cannot be shared by several workers; "
                             "give steps (or epochs) with the multi-worker strategy")
        if self.warmup is not None and not 0 <= self.warmup < 1:
            raise ValueError(f"warmup must be in [0, 1), got {self.warmup!r}")
        if self.workers < 0:
            raise ValueError(f"workers must be >= 0, got {self.workers!r}")
        for name in ("clahe", "coarse"):  # probabilities
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)!r}")
        self.phantom_size = tuple(int(v) for v in self.phantom_size)
        if len(self.phantom_size) != 3 or min(self.phantom_size) < 1:
            raise ValueError("phantom_size must be 3 positive numbers of voxels (X Y Z), got "
                             f"{self.phantom_size!r}")
        if self.input_size is not None and (self.input_size < 16 or self.input_size % 16):
            raise ValueError("input_size must be a positive multiple of 16, got "
                             f"{self.input_size!r}")
        if self.pixel_spacing is not None:
            from keras_liverseg.layers.hu_window import check_pixel_spacing

            check_pixel_spacing(self.pixel_spacing)
        check_fractions(self.liver_fraction, self.tumor_fraction)  # before any run folder
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        if self.feature_supervision not in ("encoder", "bottleneck"):
            raise ValueError("feature_supervision must be 'encoder' or 'bottleneck', got "
                             f"{self.feature_supervision!r}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning rate must be > 0, got {self.learning_rate!r}")

    @property
    def warmup_share(self) -> float:
        """The warm-up's share of the run: ``warmup``, or its default for the budget."""
        if self.warmup is not None:
            return float(self.warmup)
        return 0.05 if self.steps is not None or self.minutes is not None else 0.0

    @property
    def crops_to_liver(self) -> bool:
        if self.liver_roi is not None:
            return bool(self.liver_roi)
        from keras_liverseg.zoo.catalog import get_entry

        return self.task == "tumor" or get_entry(self.model).liver_roi is not None

    @property
    def volumetric(self) -> bool:
        """The model reads 3D patches (the V-Net family) rather than axial slices."""
        from keras_liverseg.models import registry
        from keras_liverseg.zoo.catalog import get_entry

        return registry.architecture(get_entry(self.model).architecture).volumetric

    @property
    def num_classes(self) -> int:
        return 3 if self.task == "both" else 2

    def model_overrides(self) -> dict:
        """The zoo entry's builder overrides: the classes, ``model_config``, and with
        ``input_size`` the input shape rebuilt for ``input_size x input_size`` slices (a 3D
        model keeps its depth), and ``pixel_spacing``."""
        overrides = {"num_classes": self.num_classes, **self.model_config}
        if self.pixel_spacing is not None:
            overrides["pixel_spacing"] = float(self.pixel_spacing)
        if self.input_size is not None:
            from keras_liverseg.zoo.catalog import get_entry

            shape = tuple({**get_entry(self.model).config, **overrides}["input_shape"])
            depth = shape[:1] if self.volumetric else ()
            overrides["input_shape"] = (*depth, self.input_size, self.input_size,
                                        *shape[len(depth) + 2:])
        return overrides

    def _model_config(self) -> dict:
        """The zoo entry's builder configuration with :meth:`model_overrides` applied."""
        from keras_liverseg.zoo.catalog import get_entry

        return {**get_entry(self.model).config, **self.model_overrides()}

    def input_shape(self) -> tuple[int, ...] | None:
        """The model's ``(H, W, C)`` (a 3D model's ``(D, H, W, C)``) as configured
        (``None`` if the entry does not say)."""
        shape = self._model_config().get("input_shape")
        return None if shape is None else tuple(int(v) for v in shape)

    def model_pixel_spacing(self) -> float | None:
        """The in-plane spacing (mm) the model will read slices at, or ``None``."""
        return self._model_config().get("pixel_spacing")

    def model_slice_spacing(self) -> float | None:
        """A 3D model's spacing (mm) between the axial slices it reads, or ``None``."""
        return self._model_config().get("slice_spacing")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        """Build from a dict such as ``config.json``'s, checking every key and value type.

        Raises :class:`ConfigError` for something that is not a dict, an unknown key, or a
        value of the wrong type (naming the key), and ``ValueError`` for an invalid value.
        """
        if not isinstance(values, dict):
            raise ConfigError("training settings must be a JSON object of "
                              f'{{"key": value}} pairs, got {_json_kind(values)}')
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown training settings: {', '.join(unknown)}")
        hints = typing.get_type_hints(cls)
        return cls(**{key: _checked(key, value, hints[key]) for key, value in values.items()})

    @classmethod
    def from_file(cls, path: str | Path, **overrides) -> TrainConfig:
        """Read a JSON config file; ``overrides`` (e.g. from the CLI) take precedence.

        Errors in the file are :class:`ConfigError` s whose message starts with ``path``.
        """
        try:
            values = json.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as error:
            raise ConfigError(f"{path}: cannot be read ({error.strerror or error})") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ConfigError(f"{path} is not a JSON file ({error})") from None
        if isinstance(values, dict):
            values.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return cls.from_dict(values)
        except ConfigError as error:
            raise ConfigError(f"{path}: {error}") from None


_KINDS = {int: "an integer", float: "a number", bool: "true or false", str: "a string",
          dict: "a JSON object", list: "a list", tuple: "a list"}


def _json_kind(value) -> str:
    """What a decoded JSON value is, in JSON's words."""
    kinds = {bool: "true/false", type(None): "null", int: "a number", float: "a number",
             str: "a string", list: "a list", dict: "an object"}
    return f"{kinds.get(type(value), type(value).__name__)} ({json.dumps(value, default=str)[:40]})"


def _checked(key: str, value, hint):
    """``value`` as the field type ``hint`` (``int``, ``float``, ``bool``, ``str``, ``dict``,
    ``tuple``/``list``, or one of those ``| None``), or a :class:`ConfigError` naming ``key``."""
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    if value is None and type(None) in options:
        return None
    for option in options:
        base = typing.get_origin(option) or option
        if base is bool and isinstance(value, bool):
            return value
        if isinstance(value, bool):
            continue  # JSON true/false is not a number
        if base is int and isinstance(value, int | float) and float(value).is_integer():
            return int(value)
        if base is float and isinstance(value, int | float):
            return float(value)
        if base in (str, dict) and isinstance(value, base):
            return value
        if base in (list, tuple) and isinstance(value, list | tuple):
            return base(value)
    wanted = " or ".join(_KINDS.get(typing.get_origin(o) or o, str(o))
                         for o in options if o is not type(None))
    if type(None) in options:
        wanted += " or null"
    raise ConfigError(f"{key!r} must be {wanted}, got {value!r}")
