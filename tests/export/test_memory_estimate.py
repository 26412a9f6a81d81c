"""The export's memory estimate: the copies it counts are the ones measured
(benchmarks/memory/), so a preset that cannot fit is refused up front with
the number it needs, instead of being killed by the kernel."""

import pytest

from edge_backbones.errors import InputError
from edge_backbones.exporter import memory
from edge_backbones.models.backbone import Backbone


@pytest.mark.large  # builds 632 M parameters (2.5 GB)
def test_sam_vit_huge_at_1024_is_refused_on_24_gb_with_the_numbers():
    # measured: sam_vit_huge at 1024 in cpu grew to 24.1 GB and was
    # OOM-killed on a 24 GB machine
    huge = Backbone.from_preset(
        "sam_vit_huge", load_weights=False, image_shape=(64, 64, 3)
    )
    needed = memory.estimate_bytes(huge, (1024, 1024))
    assert needed > 24 * 10**9
    with pytest.raises(InputError) as caught:
        memory.check_backbone(huge, (1024, 1024), free=22 * 2**30)
    message = str(caught.value)
    assert f"needs about {needed / 2**30:.1f} GiB" in message
    assert "22.0 GiB is free" in message and "weights" in message


def test_sam_vit_base_at_256_matches_its_measured_peak():
    # measured (benchmarks/memory/results.md): fp32 conversion peak
    # 3574 MiB; the estimate must cover it without doubling it
    base = Backbone.from_preset(
        "sam_vit_base", load_weights=False, image_shape=(256, 256, 3)
    )
    estimate = memory.estimate_bytes(base, (256, 256)) / 2**20
    assert 3574 <= estimate <= 1.25 * 3574


def test_phase_meter_sees_a_phase_allocate():
    import numpy as np

    meter = memory.PhaseMeter()
    with meter.phase("small"):
        pass
    with meter.phase("big"):
        block = np.ones(200 * 2**20 // 8)  # 200 MiB touched
        del block
    growth = (meter.phases["big"] - meter.phases["small"]) / 2**20
    assert 150 < growth < 260
