"""Vendor SDKs for LiteRT's compiler plugins: found, prepared, or refused.

LiteRT's AOT compile looks for each vendor's SDK libraries through a Python
module `ai_edge_litert_sdk_<vendor>` and its `path_to_sdk_libs()`. The PyPI
packages of that name are source distributions that download the SDK from
the vendor at install time, which fails where only package registries are
reachable (Qualcomm's even installs "successfully", empty). So:

- Qualcomm: QAIRT's x86-64 libraries (libQnnHtp.so, libHtpPrepare.so,
  libQnnSystem.so, ...) ship in the `onnxruntime-qnn` wheel (`npu` extra),
  under Qualcomm's licence (`onnxruntime_qnn/Qualcomm_LICENSE.pdf`). The
  plugin also links `libQnnLpai.so`, which that wheel lacks and from which
  it uses no symbol; we write an empty ELF shared object of that name into
  our cache folder (no C compiler needed). For the compile only, a stand-in
  module answers `path_to_sdk_libs()` with the wheel's folder plus ours.
- Intel: the `openvino` wheel (`npu` extra) has the CPU device; the NPU
  compiler is only in the SDK download.
- MediaTek, Google Tensor, Samsung: nothing on a registry carries their
  SDKs, so those SoCs are a typed `SdkUnavailableError`, unless a real SDK
  package with its libraries is installed.
"""

import contextlib
import importlib
import os
from collections.abc import Iterable, Iterator
from importlib import metadata
from typing import TYPE_CHECKING

from edge_backbones.atomic_io import write_file_atomic
from edge_backbones.errors import SdkUnavailableError, require
from edge_backbones.npu.elf_stub import empty_shared_object

if TYPE_CHECKING:
    from edge_backbones.npu.socs import Soc

__all__ = ["Toolchain", "cache_dir", "toolchain_for"]

_LPAI = "libQnnLpai.so"

# vendor -> (SDK package on PyPI, what the SDK is)
_SDK_PACKAGES = {
    "qualcomm": ("ai-edge-litert-sdk-qualcomm", "Qualcomm AI Runtime (QAIRT)"),
    "intel_openvino": ("ai-edge-litert-sdk-intel", "Intel NPU compiler"),
    "mediatek": ("ai-edge-litert-sdk-mediatek", "MediaTek NeuroPilot SDK"),
    "google_tensor": (
        "ai-edge-litert-sdk-google-tensor",
        "Google Tensor compiler",
    ),
    "samsung": ("ai-edge-litert-sdk-samsung", "Samsung Exynos AI Studio"),
}


def cache_dir() -> str:
    """Our cache folder: $EDGE_BACKBONES_CACHE, else ~/.cache/edge_backbones."""
    root = os.environ.get("EDGE_BACKBONES_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"),
        "edge_backbones",
    )
    return os.path.join(root, "npu")


class Toolchain:
    """What one vendor's compile needs: library folders and versions."""

    def __init__(
        self,
        vendor: str,
        sdk_libs: str | None,
        versions: dict[str, str],
        notes: Iterable[str] = (),
    ) -> None:
        self.vendor = vendor
        self.sdk_libs = sdk_libs  # os.pathsep-joined folders, or None
        self.versions = versions  # name -> version, for the metadata
        self.notes = list(notes)  # what was prepared, said once to the user

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        """LiteRT's plugin finds this SDK's libraries inside this block
        (`_compat.litert.sdk_module`); nothing outlives the compile."""
        if self.sdk_libs is None:
            yield
            return
        from edge_backbones._compat.litert import sdk_module

        with sdk_module(self.vendor, self.sdk_libs):
            yield


def _real_sdk_libs(vendor, marker=None):
    """The installed SDK package's library folder, if it holds `marker`.

    With no `marker`, any non-empty folder counts.
    """
    try:
        module = importlib.import_module(f"ai_edge_litert_sdk_{vendor}")
        folder = module.path_to_sdk_libs()
    except Exception:  # noqa: BLE001 - an empty or broken SDK package
        return None
    if not folder or not os.path.isdir(str(folder)):
        return None
    if marker is None:
        return str(folder) if os.listdir(str(folder)) else None
    return (
        str(folder)
        if os.path.isfile(os.path.join(str(folder), marker))
        else None
    )


def _unavailable(vendor, soc, why):
    package, sdk = _SDK_PACKAGES[vendor]
    return SdkUnavailableError(
        f"Compiling for {soc} needs the {sdk}, which is not installed: "
        f"{why} `{package}` on PyPI is a source package that downloads the "
        "SDK from the vendor's servers while it installs, and only package "
        "registries are reachable here, so it cannot be installed on this "
        f"machine. On one that reaches the vendor: pip install {package}, "
        "then compile again."
    )


def _qualcomm(soc):
    real = _real_sdk_libs("qualcomm", "libQnnHtp.so")
    if real is not None:
        return Toolchain("qualcomm", None, {"qairt": "installed SDK"})
    qnn = require("onnxruntime_qnn", "npu")
    wheel_libs = os.path.dirname(qnn.__file__)
    if not os.path.isfile(os.path.join(wheel_libs, "libQnnHtp.so")):
        why = (
            f"the onnxruntime-qnn wheel at {wheel_libs} has no libQnnHtp.so "
            "(not an x86-64 Linux wheel?)."
        )
        raise _unavailable("qualcomm", soc, why)
    qairt = qnn.build_and_package_info.qnn_version
    stub_dir = os.path.join(cache_dir(), f"qairt-{qairt}")
    stub = os.path.join(stub_dir, _LPAI)
    notes = []
    if not os.path.isfile(stub):
        os.makedirs(stub_dir, exist_ok=True)
        write_file_atomic(stub, empty_shared_object(_LPAI))
        notes.append(
            f"prepared {stub}: an empty {_LPAI} that LiteRT's Qualcomm "
            "plugin links but never calls (QAIRT from onnxruntime-qnn "
            f"{qnn.__version__}, Qualcomm's licence applies)"
        )
    versions = {"qairt": qairt, "onnxruntime_qnn": qnn.__version__}
    libs = os.pathsep.join([wheel_libs, stub_dir])
    return Toolchain("qualcomm", libs, versions, notes)


def _intel(soc):
    if soc.graph_backend != "cpu":
        if _real_sdk_libs("intel"):
            return Toolchain("intel_openvino", None, {})
        why = (
            "the openvino wheel has the CPU device but not the NPU compiler. "
            "`--soc intel-cpu` compiles for OpenVINO's CPU device with the "
            "same plugin."
        )
        raise _unavailable("intel_openvino", soc.name, why)
    require("openvino", "npu")
    return Toolchain(
        "intel_openvino", None, {"openvino": metadata.version("openvino")}
    )


def toolchain_for(soc: "Soc") -> Toolchain:
    """The Toolchain to compile for `soc`, or a typed error saying why not.

    Raises:
        SdkUnavailableError: the SoC's SDK is not here and cannot be
            installed.
    """
    if soc.vendor == "qualcomm":
        return _qualcomm(soc.name)
    if soc.vendor == "intel_openvino":
        return _intel(soc)
    if _real_sdk_libs(soc.vendor) is not None:
        return Toolchain(soc.vendor, None, {})
    why = (
        "LiteRT's plugin needs the SDK's compiler libraries at compile time "
        "(without them it fails in 0.1 s)."
    )
    raise _unavailable(soc.vendor, soc.name, why)
