"""keras_liverseg.io (in progress)."""
