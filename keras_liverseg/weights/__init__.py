"""Bundled model weights (package data); see the model cards in the repository's zoo/."""
