"""Vocabulary every layer uses: the model spec, the slug, the settings. Imports nothing of ours."""

__version__ = "0.1.0"
