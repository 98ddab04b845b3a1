"""The ``liverseg`` command-line application (installed as ``keras_liverseg.cli``)."""
