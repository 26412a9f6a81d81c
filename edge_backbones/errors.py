"""Typed errors. Each message says what was received and how to fix it.

This module imports nothing heavy: the runtime (numpy + a TFLite interpreter)
raises these too.
"""

from types import ModuleType
from typing import Any

__all__ = [
    "EdgeBackbonesError",
    "UnknownPresetError",
    "CheckpointError",
    "WeightsNotFoundError",
    "CalibrationError",
    "ExportError",
    "FidelityError",
    "BudgetError",
    "ModelFileError",
    "MetadataError",
    "IntegrityError",
    "ArtifactSchemaError",
    "InputError",
    "ImageNotSetError",
    "UnknownOptionError",
    "DelegateUnavailableError",
    "MissingDependencyError",
    "ReportError",
    "SdkUnavailableError",
    "CompileError",
    "DiskSpaceError",
    "ClusterError",
]


class EdgeBackbonesError(Exception):
    """Base class of every error this package raises on purpose."""


class UnknownPresetError(EdgeBackbonesError, ValueError):
    """A preset name that no model family registers."""


class CheckpointError(EdgeBackbonesError, ValueError):
    """A checkpoint that is missing, unreadable, or does not fit the model.

    Every family raises it (or its subclass `WeightsNotFoundError` when
    the weights file is not there), so one `except CheckpointError` covers
    a bad checkpoint of any family.
    """


class WeightsNotFoundError(CheckpointError, FileNotFoundError):
    """Weights were asked for but are not on this disk.

    A preset whose checkpoint is not found, or a checkpoint folder without
    its weights file. A CheckpointError like every other bad checkpoint, a
    FileNotFoundError for code that catches missing files, and a ValueError
    for code written for keras-cv / keras-hub, which raise ValueError when
    weights cannot be loaded.
    """


class CalibrationError(EdgeBackbonesError, ValueError):
    """No usable calibration images (empty folder, unreadable files)."""


class ExportError(EdgeBackbonesError, RuntimeError):
    """Conversion failed or produced a graph we refuse to ship."""


class FidelityError(ExportError):
    """An artifact fell below its mode's accuracy threshold."""

    # its figures (`core.fidelity.compare`), where the raiser had them
    fidelity: dict[str, Any] | None = None
    # a segmenter's mask agreement figures, where the raiser had them
    masks: Any = None


class BudgetError(ExportError):
    """No per-layer precision choice meets the export's budget; nothing
    was written. The message names the closest graph and its figures."""

    # the closest graph's step of the search log (cosine, ms, MB)
    closest: dict[str, Any] | None = None


class ModelFileError(EdgeBackbonesError, ValueError):
    """A missing, empty, truncated or non-TFLite model file."""


class MetadataError(EdgeBackbonesError, ValueError):
    """Model metadata that is missing, malformed or disagrees with the model."""


class IntegrityError(ModelFileError, MetadataError):
    """A model file whose bytes differ from the hash recorded at export."""


class ArtifactSchemaError(MetadataError):
    """Artifact metadata that breaks core/artifact.schema.json.

    `field` is the JSON path of the first problem (`$.outputs.P1.dtype`),
    `schema_version` the schema file's version it was checked against.
    """

    def __init__(
        self,
        message: str,
        field: str | None = None,
        schema_version: int | None = None,
    ) -> None:
        super().__init__(message)
        self.field = field
        self.schema_version = schema_version


class InputError(EdgeBackbonesError, ValueError):
    """An input of the wrong shape, dtype or channel count."""


class ImageNotSetError(EdgeBackbonesError, RuntimeError):
    """A promptable model asked for masks before it was given an image."""


class UnknownOptionError(InputError, TypeError):
    """An option name nothing takes (a typo): the message names the closest
    known one. A TypeError too, as Python's own for an unknown keyword."""


class DelegateUnavailableError(EdgeBackbonesError, ValueError):
    """A delegate that is unknown or failed to load (raised when strict)."""


class ReportError(EdgeBackbonesError, RuntimeError):
    """Some rows of a report could not be measured (the others were kept)."""

    # the result file holding the rows that were measured, if one was written
    result_path: str | None = None
    # on a cluster: the result files written, one per device
    result_paths: list[str] | None = None


class SdkUnavailableError(EdgeBackbonesError, RuntimeError):
    """A vendor NPU SDK that this machine lacks and cannot install."""


class CompileError(EdgeBackbonesError, RuntimeError):
    """A vendor compiler plugin failed on a model (ahead-of-time compile)."""


class DiskSpaceError(EdgeBackbonesError, OSError):
    """A folder's file system has too little free space for an export's
    files (checked up front against the export's estimate, or a write
    that failed with ENOSPC); the message names the folder and the relief.
    Not an ExportError: no other candidate can succeed on a full disk."""


class ClusterError(EdgeBackbonesError, RuntimeError):
    """A Ray cluster that cannot be reached or cannot run a part of a
    report (a device no node provides, an export larger than any node)."""

    # the result files written before the failure, one per device
    result_paths: list[str] | None = None


class MissingDependencyError(EdgeBackbonesError, ImportError):
    """An optional dependency is not installed; says which extra brings it."""


def require(module: str, extra: str) -> ModuleType:
    """Imports `module`, or raises a MissingDependencyError naming the extra.

    Raises:
        MissingDependencyError: `module` is not installed.
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"`{module}` is needed here but is not installed ({exc}). "
            f'Install it with: pip install "edge-backbones[{extra}]"'
        ) from exc
