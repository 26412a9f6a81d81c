"""Contracts every other part of the package shares, free of TensorFlow,
Keras and LiteRT, so that each imports them downward from here."""
