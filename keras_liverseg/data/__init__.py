"""keras_liverseg.data."""
