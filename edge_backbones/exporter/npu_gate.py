"""`export --target npu --soc SM8650`: compile, then gate on the NPU's numerics.

The `npu` artifact is verified on LiteRT's CPU like every other one; with
SoCs given, each compiled file is then run in its vendor's x86 simulation on
the same held-out photos and compared with the same Keras float outputs.
Below the `npu` gate it fails with the figures and nothing is written for
that SoC. The metadata's `fidelity` is then the simulated one (labelled
"NPU numerics (simulated)"); `compiled.numerics_vs_cpu` compares the
simulation with LiteRT's CPU run of the source artifact (XNNPACK where it
takes the ops), and `compiled.cpu_reference_kernels` LiteRT's reference
kernels with both: the spread between two CPU implementations of the same
integer graph, against which the simulator's distance is judged. A
segmenter's simulated class maps are scored as its CPU ones are (mask
agreement and mIoU vs the float model's, gated by the source's
`min_mask_agreement`): the compiled file's `task.verification` is the
simulated one.
"""

import os
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from edge_backbones.core import fidelity as fidelity_lib
from edge_backbones.core.modes import npu_targets
from edge_backbones.errors import InputError
from edge_backbones.exporter import segmentation, verify
from edge_backbones.npu.compile import (
    compile_model,
    compiled_name,
    write_compiled,
)
from edge_backbones.npu.sdk import toolchain_for
from edge_backbones.npu.socs import Soc, parse_socs
from edge_backbones.runtime.npu_engines import NPU_NUMERICS_LABEL

__all__ = ["check_socs", "compile_verified"]


def check_socs(
    socs: str | Sequence[str] | None, targets: Iterable[str]
) -> list[Soc]:
    """Parsed SoCs, each with its SDK checked; before any slow work.

    Raises:
        InputError: SoCs without the npu target, or an unknown SoC.
        SdkUnavailableError: an SoC's SDK is not on this machine.
    """
    if not socs:
        return []
    npu = npu_targets()
    if not set(npu) & set(targets or ()):
        raise InputError(
            f"--soc {socs} compiles the npu artifact, but the targets are "
            f"{list(targets or ())}. Add --target {' or '.join(npu)}."
        )
    parsed = parse_socs(socs if isinstance(socs, str) else ",".join(socs))
    for soc in parsed:
        toolchain_for(soc)
    return parsed


def _simulate(compiled, meta, source_path, holdout):
    """Simulated outputs and the source's CPU outputs on `holdout`."""
    from edge_backbones.runtime.edge_model import EdgeModel

    with tempfile.TemporaryDirectory(prefix="edge_backbones_npu_") as work:
        staged = os.path.join(work, "compiled.tflite")
        write_compiled(staged, compiled, meta)
        model = EdgeModel(staged)
        simulated, backend = model.run_batch(holdout), model.npu_backend
        del model
    cpu = EdgeModel(source_path).run_batch(holdout)
    # LiteRT's reference kernels: a second CPU implementation of the same
    # integer graph, to show how far two correct engines already disagree
    reference_kernels = EdgeModel(source_path, delegates=("cpu",)).run_batch(
        holdout
    )
    return simulated, cpu, reference_kernels, backend


def compile_verified(
    source: Any,
    socs: Sequence[Soc],
    holdout: Any,
    reference: Mapping[str, Any],
    gate: float,
    log: Callable[[str], object],
) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """Compiles the npu artifact `source` (an ArtifactRecord) per SoC.

    Returns [(path, fidelity vs float, metadata)] for the files written
    beside the source.
    """
    written = []
    for soc in socs:
        compiled, meta, record = compile_model(source.path, soc, log)
        simulated, cpu, reference_kernels, backend = _simulate(
            compiled, meta, source.path, holdout
        )
        name = compiled_name(source.path, soc)
        masks = _simulated_masks(source, soc, name, reference, simulated)
        if masks is not None:
            meta["task"]["verification"] = masks
            reference, simulated, cpu, reference_kernels = (
                segmentation.without_classes(outputs)
                for outputs in (reference, simulated, cpu, reference_kernels)
            )
        fidelity = fidelity_lib.compare(reference, simulated)
        verify.check(fidelity, gate, f"npu@{soc.name}", name)
        vs_cpu = fidelity_lib.compare(cpu, simulated)
        meta["fidelity"] = {
            **fidelity,
            "min_cosine": gate,
            "holdout": source.metadata["fidelity"]["holdout"],
            "label": NPU_NUMERICS_LABEL,
            "backend": backend,
        }
        meta["compiled"]["numerics_vs_cpu"] = {
            **vs_cpu,
            "label": NPU_NUMERICS_LABEL,
            "backend": backend,
            "reference": "source artifact on LiteRT CPU",
        }
        meta["compiled"]["cpu_reference_kernels"] = {
            "vs_float": fidelity_lib.compare(reference, reference_kernels),
            "vs_cpu": fidelity_lib.compare(cpu, reference_kernels),
        }
        path = os.path.join(os.path.dirname(source.path), name)
        write_compiled(path, compiled, meta)
        log(
            f"npu@{soc.name} {path}  {record.ops_on_npu}/{record.ops_total} "
            f"ops on the NPU in {record.partitions} partition(s), "
            f"{record.compile_seconds:.1f} s; {NPU_NUMERICS_LABEL} on "
            f"{backend}: {fidelity_lib.format_fidelity(fidelity)} vs float, "
            "cos "
            f"{fidelity_lib.worst(vs_cpu)[1]['cosine']:.5f} vs LiteRT CPU"
        )
        if masks is not None:
            log(f"npu@{soc.name}: {segmentation.format_masks(meta['task'])}")
        written.append((path, fidelity, meta))
    return written


def _simulated_masks(source, soc, name, reference, simulated):
    """A segmenter's simulated class maps against the float model's, its
    gate checked (FidelityError below it); None for a backbone."""
    task = source.metadata.get("task") or {}
    if task.get("kind") != segmentation.SEGMENTATION:
        return None
    checked = task["verification"]
    if segmentation.CLASSES not in reference:
        # the float model's class map, as the graph's (or the runtime's)
        from edge_backbones.runtime.class_map import class_map

        _, height, width, _ = source.metadata["input"]["shape"]
        reference = {
            **reference,
            segmentation.CLASSES: class_map(
                reference[segmentation.LOGITS],
                task.get("classes_at", "logits"),
                (height, width),
            ),
        }
    masks = segmentation.mask_fidelity(
        reference, simulated, task["num_classes"]
    )
    gate = checked["min_mask_agreement"]
    segmentation.check_masks(masks, gate, f"npu@{soc.name}", name)
    return {
        **masks,
        "min_mask_agreement": gate,
        "holdout": checked["holdout"],
    }
