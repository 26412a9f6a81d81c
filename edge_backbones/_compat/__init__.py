"""Every private API of another library this package uses, one module per
library: `tensorflow` (converter internals), `litert` (interpreter
internals), `keras` (layer internals).

No other module names a private attribute of TensorFlow, LiteRT or Keras
(tests/test_layering.py checks). Each module lists the versions its calls
were checked on (`CHECKED_ON`); tests/test_compat.py fails, naming the
module to re-check, when another version is installed.
"""

from edge_backbones._compat._versions import installed_version, unchecked

__all__ = ["installed_version", "unchecked"]
