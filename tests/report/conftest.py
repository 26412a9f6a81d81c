"""Tiny exported models and report results shared by the report tests.

The artifacts are real exports (`edge_backbones.export()`) of a four-stage
MiT (tests/tiny.py: `TINY_MIT_64`), so timing them takes milliseconds.
"""

import pytest

from tests.tiny import TINY_MIT_64


@pytest.fixture(scope="session")
def tiny_artifacts(tmp_path_factory):
    """A folder with mit_tiny_64x64_fp32.tflite and _dynamic.tflite."""
    import edge_backbones
    from edge_backbones.models.backbone import Backbone

    backbone = Backbone.from_preset("mit_b0", load_weights=False, **TINY_MIT_64)
    folder = tmp_path_factory.mktemp("artifacts")
    edge_backbones.export(
        backbone,
        image_size=64,
        modes=("fp32", "dynamic"),
        out=str(folder),
        name="mit_tiny",
    )
    return folder


@pytest.fixture(scope="session")
def device_results(tiny_artifacts, tmp_path_factory):
    """Result files of two devices timing the same artifacts."""
    from edge_backbones.report.collect import collect_artifacts

    out = tmp_path_factory.mktemp("results")
    return [
        collect_artifacts(
            str(tiny_artifacts),
            str(out),
            name,
            threads=threads,
            runs=5,
            warmup=1,
        )
        for name, threads in (("laptop", (1, 2)), ("pi", (1,)))
    ]
