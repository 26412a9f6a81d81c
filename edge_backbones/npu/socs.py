"""The SoCs `edge-backbones compile` knows, read from LiteRT's own targets.

A SoC name on the command line (`SM8650`, `MT6991`, `Tensor_G4`,
`intel-cpu`) maps to one LiteRT vendor backend and its target model. The
lists come from the `target` modules of `ai_edge_litert.aot.vendors` (pure
Python, in the core install), so a SoC LiteRT adds is accepted without a
change here.
"""

import dataclasses
import importlib
from collections.abc import Sequence
from typing import Any

from edge_backbones.errors import InputError
from edge_backbones.text import split_commas

__all__ = ["Soc", "VENDORS", "known_socs", "parse_socs"]


@dataclasses.dataclass(frozen=True)
class Vendor:
    backend_id: str  # LiteRT's vendor backend id
    label: str  # who makes it, for messages
    accelerator: str  # what runs the compiled partitions, for tables


VENDORS = {
    "qualcomm": Vendor("qualcomm", "Qualcomm", "QNN HTP"),
    "intel_openvino": Vendor("intel_openvino", "Intel", "OpenVINO"),
    "mediatek": Vendor("mediatek", "MediaTek", "NeuroPilot APU"),
    "google_tensor": Vendor("google_tensor", "Google Tensor", "Tensor TPU"),
    "samsung": Vendor("samsung", "Samsung", "Exynos NPU"),
}

# OpenVINO's CPU device stands in for an Intel NPU: the NPU compiler is only
# in the vendor SDK download, the CPU plugin is in the `openvino` wheel
INTEL_CPU = "intel-cpu"


@dataclasses.dataclass(frozen=True)
class Soc:
    name: str  # as the user wrote it, canonical case
    vendor: str  # key of VENDORS
    soc_model: str  # the LiteRT target's SocModel value
    graph_backend: str | None = None  # Intel only: "cpu" or None (NPU)

    @property
    def accelerator(self) -> str:
        if self.graph_backend == "cpu":
            return "OpenVINO CPU"
        return VENDORS[self.vendor].accelerator

    @property
    def x86_run(self) -> str:
        """How its compiled file runs on x86: "simulator" or "native".

        QNN's HTP backend simulates the Hexagon NPU (numerics only, slow);
        OpenVINO's CPU device is the real thing for `intel-cpu`.
        """
        return "native" if self.graph_backend == "cpu" else "simulator"

    def litert_target(self) -> Any:
        """The LiteRT `Target` the compiler plugin takes for this SoC."""
        """The `ai_edge_litert.aot` Target object for this SoC."""
        module = _target_module(self.vendor)
        return module.Target(module.SocModel(self.soc_model))


def _target_module(vendor):
    return importlib.import_module(
        f"ai_edge_litert.aot.vendors.{vendor}.target"
    )


def known_socs() -> dict[str, Soc]:
    """Name (upper case) -> Soc, for every target LiteRT lists."""
    socs = {INTEL_CPU.upper(): Soc(INTEL_CPU, "intel_openvino", "LNL", "cpu")}
    for vendor in VENDORS:
        for model in _target_module(vendor).SocModel:
            if model.value != "ALL":
                socs.setdefault(
                    model.value.upper(), Soc(model.value, vendor, model.value)
                )
    return socs


def parse_socs(text: str | Sequence[str] | None) -> list[Soc]:
    """ "SM8650,SM8750" -> [Soc, Soc]; unknown names are an InputError.

    Raises:
        InputError: an unknown SoC name.
    """
    known = known_socs()
    names = split_commas(str(text))
    unknown = [n for n in names if n.upper() not in known]
    if not names or unknown:
        raise InputError(
            f"Unknown SoC {', '.join(unknown) or repr(text)}. Known: "
            f"{', '.join(s.name for s in known.values())}. Pass one or "
            "more, comma separated, e.g. --soc SM8650,SM8750 or "
            f"--soc {INTEL_CPU}."
        )
    socs = []
    for name in names:
        soc = known[name.upper()]
        if soc not in socs:
            socs.append(soc)
    return socs
