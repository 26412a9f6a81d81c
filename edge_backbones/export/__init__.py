"""Keras -> SavedModel -> TFLite export (needs the `export` extra)."""
