"""keras_liverseg.inference (in progress)."""
