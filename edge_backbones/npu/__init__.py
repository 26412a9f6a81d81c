"""NPU deployment: ahead-of-time compile with LiteRT's vendor plugins.

`compile_artifact` turns an exported artifact into one compiled .tflite per
SoC; `edge_backbones.runtime.npu_engines` runs those files on x86 in the
vendor's simulation (QNN HTP, OpenVINO CPU) so their numerics can be
checked. Simulated runs say nothing about a device's speed.
"""

from edge_backbones.npu.compile import (
    CompiledArtifact,
    compile_artifact,
    format_table,
)
from edge_backbones.npu.socs import known_socs, parse_socs

__all__ = [
    "CompiledArtifact",
    "compile_artifact",
    "format_table",
    "known_socs",
    "parse_socs",
]
