"""The export's memory estimate: the copies it counts are the ones measured
(benchmarks/memory/), so a preset that cannot fit is refused up front with
the number it needs, instead of being killed by the kernel."""

import pytest

from edge_backbones.errors import InputError
from edge_backbones.exporter import memory
from edge_backbones.models.backbone import Backbone


def _peak(*args):
    """The export's need: its largest phase."""
    return max(memory.phase_bytes(*args).values())


@pytest.mark.large  # builds 632 M parameters (2.5 GB)
def test_sam_vit_huge_at_1024_in_one_process_is_refused_with_the_numbers():
    # measured: sam_vit_huge at 1024 in cpu, in one process, grew to
    # 24.1 GB and was OOM-killed on a 24 GB machine
    huge = Backbone.from_preset(
        "sam_vit_huge", load_weights=False, image_shape=(64, 64, 3)
    )
    needed = _peak(huge, (1024, 1024))
    assert needed > 19 * 2**30  # 8 copies of 2.35 GiB of weights
    with pytest.raises(InputError) as caught:
        memory.check_backbone(huge, (1024, 1024), free=16 * 2**30)
    message = str(caught.value)
    assert f"needs about {needed / 2**30:.1f} GiB" in message
    assert "16.0 GiB is free" in message and "weights" in message


def test_sam_vit_base_at_256_matches_its_measured_peak():
    # measured (benchmarks/memory/results.md): fp32 conversion peak
    # 3574 MiB; the estimate must cover it without doubling it
    base = Backbone.from_preset(
        "sam_vit_base", load_weights=False, image_shape=(256, 256, 3)
    )
    estimate = _peak(base, (256, 256)) / 2**20
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


class _Sized:
    """A backbone's two numbers the estimate reads, without building it."""

    def __init__(self, params, activation):
        self.params, self.activation = params, activation

    def count_params(self):
        return self.params

    def peak_activation_bytes(self, height, width):
        return self.activation


def test_isolated_export_needs_less_than_one_process_for_big_weights():
    # sam_vit_huge's weights (632 M parameters) at a size whose attention
    # scores are small: in one process the converter's copies sit beside
    # the Keras model's; isolated, the conversion is the child plus a runtime
    huge = _Sized(632 * 10**6, 2**24)
    alone = memory.phase_bytes(huge, (1024, 1024))
    split = memory.phase_bytes(huge, (1024, 1024), isolated=True)
    assert max(split.values()) < max(alone.values()) - 2 * 2**30
    assert max(split, key=split.__getitem__) == "convert"


def test_isolate_only_where_one_process_does_not_fit_and_plans_allow():
    base = _Sized(90 * 10**6, 2**24)
    needed = _peak(base, (256, 256))
    assert not memory.isolate_conversion(base, (256, 256), True, free=needed)
    assert memory.isolate_conversion(base, (256, 256), True, free=needed - 1)
    assert not memory.isolate_conversion(base, (256, 256), False, free=2**20)


def test_isolated_refusal_names_the_child_conversion():
    huge = _Sized(632 * 10**6, 2**24)
    needed = _peak(huge, (1024, 1024), True)
    with pytest.raises(InputError) as caught:
        memory.check_backbone(
            huge, (1024, 1024), free=needed - 2**30, isolated=True
        )
    message = str(caught.value)
    assert f"needs about {needed / 2**30:.1f} GiB" in message
    assert "child process" in message and "2.4 GiB each" in message
    # and with room for it, nothing is raised
    memory.check_backbone(huge, (1024, 1024), free=needed, isolated=True)


def test_fp32_over_the_flatbuffer_limit_is_refused_before_work():
    from edge_backbones.core import modes
    from edge_backbones.exporter.pipeline import _check_flatbuffer_size

    huge = _Sized(632 * 10**6, 0)
    fp16, fp32 = modes.resolve_plans(("fp16", "fp32"), ())
    _check_flatbuffer_size(huge, [fp16], "sam_vit_huge")  # 1.18 GiB: fits
    with pytest.raises(InputError, match=r"fp32 artifact would hold 2\.35"):
        _check_flatbuffer_size(huge, [fp16, fp32], "sam_vit_huge")


def test_isolated_fp16_counts_fewer_copies_than_fp32():
    # measured in a child: fp32 2380 MiB on sam_vit_base@256, fp16 3.0
    # copies on sam_vit_huge@1024
    huge = _Sized(632 * 10**6, 2**24)
    fp16 = _peak(huge, (1024, 1024), True, ["fp16"])
    both = _peak(huge, (1024, 1024), True, ["fp16", "fp32"])
    assert both - fp16 == 1.5 * 4 * 632 * 10**6  # 5 copies instead of 3.5


def test_a_child_phase_counts_both_processes():
    lines = []
    meter = memory.PhaseMeter(lines.append)
    meter.add_child("convert fp16", 3 * 2**30, alongside=2**30)
    assert meter.summary() == {"convert fp16": 4096}
    assert lines == [
        "memory: convert fp16: child process peak RSS 3072 MiB, with this "
        "process 4096 MiB"
    ]


def test_the_graph_reference_covers_its_measured_peak():
    # measured: sam_vit_base's reference at 1024 as one tf.function (768
    # MiB of attention scores) peaked at 3108 MiB, eager at 5967
    base = _Sized(90 * 10**6, 768 * 2**20)
    reference = memory.phase_bytes(base, (1024, 1024))["reference"] / 2**20
    assert 3108 <= reference <= 1.25 * 3108


def test_at_1024_the_child_conversion_is_the_largest_phase():
    # sam_vit_huge at 1024 (1 GiB of attention scores, 2.4 GiB of
    # weights): with the reference in graph mode the isolated fp16
    # conversion decides whether the export fits
    huge = _Sized(632 * 10**6, 2**30)
    phases = memory.phase_bytes(huge, (1024, 1024), True, ["fp16"])
    assert max(phases, key=phases.__getitem__) == "convert"
    assert phases["reference"] < 8 * 2**30
    with pytest.raises(InputError, match=r"child process \(3\.5 float32"):
        memory.check_backbone(
            huge,
            (1024, 1024),
            free=10 * 2**30,
            isolated=True,
            converters=["fp16"],
        )


def test_the_max_memory_variable_caps_what_is_free(monkeypatch):
    monkeypatch.setenv(memory.MAX_MEMORY_ENV, "0.5")
    assert memory.available_bytes() == 2**29
    monkeypatch.setenv(memory.MAX_MEMORY_ENV, "1e6")  # above: what is free
    assert memory.available_bytes() < 1e6 * 2**30
    monkeypatch.setenv(memory.MAX_MEMORY_ENV, "12GB")
    with pytest.raises(InputError, match="not a positive number of GiB"):
        memory.available_bytes()


def test_memory_phases_is_the_structure_that_needs_less(
    tiny_backbone, monkeypatch
):
    from edge_backbones.exporter import options, pipeline

    job = options.job(
        {"model": tiny_backbone, "modes": ["fp16"], "image_size": 32}
    )
    # tiny weights: one process needs less than a second runtime
    assert pipeline.memory_phases(job) == memory.phase_bytes(
        tiny_backbone, (32, 32), False, ["fp16"]
    )
    # sam_vit_huge's weights: the split needs less, where it is allowed
    huge = _Sized(632 * 10**6, 2**24)
    monkeypatch.setattr(
        pipeline, "load_backbone", lambda *args: (huge, "huge", "random")
    )
    monkeypatch.setattr(pipeline, "_isolable", lambda *args: True)
    assert pipeline.memory_phases(job) == memory.phase_bytes(
        huge, (32, 32), True, ["fp16"]
    )
    monkeypatch.setattr(pipeline, "_isolable", lambda *args: False)
    assert pipeline.memory_phases(job) == memory.phase_bytes(
        huge, (32, 32), False, ["fp16"]
    )


def test_an_export_keeps_within_the_memory_it_reserved(
    tiny_backbone, tmp_path, monkeypatch
):
    # what a cluster task does: reserve the need, cap the export by it
    from edge_backbones.exporter import options, pipeline

    kwargs = {"model": tiny_backbone, "modes": ["fp32"], "out": tmp_path}
    need = max(pipeline.memory_phases(options.job(kwargs)).values())
    monkeypatch.setenv(memory.MAX_MEMORY_ENV, str((need - 2**20) / 2**30))
    with pytest.raises(InputError, match="cannot be exported here"):
        pipeline.export(**kwargs)
    assert not list(tmp_path.glob("*.tflite"))
    # with what it needs, it plans (the cluster stage exports so)
    monkeypatch.setenv(memory.MAX_MEMORY_ENV, str(need / 2**30))
    assert pipeline.plan_export(options.job(kwargs)).isolated is False


def test_sam_vit_huge_cpu_at_1024_estimate_covers_every_measured_phase():
    # measured (benchmarks/memory/results.md), child conversions, fp16:
    # reference 5807 MiB, convert 12040 (child 8353 + this process 3687),
    # verify 7706; the estimate covers each, the peak within 25 %
    huge = _Sized(631.7 * 10**6, 2**30)  # 16 heads x 4096^2 float32 scores
    phases = memory.phase_bytes(huge, (1024, 1024), True, ["fp16"])
    mib = {k: v / 2**20 for k, v in phases.items()}
    assert mib["reference"] >= 5807 and mib["verify"] >= 7706
    assert 12040 <= mib["convert"] <= 1.25 * 12040
    assert max(phases, key=phases.__getitem__) == "convert"


def test_the_benchmark_reads_the_phases_an_unfinished_export_logged():
    # benchmarks.memory.measure parses PhaseMeter's own lines, so a run
    # stopped mid-way still reports each phase it got through
    from benchmarks.memory.measure import phases_so_far

    lines = []
    meter = memory.PhaseMeter(lines.append)
    with meter.phase("reference"):
        pass
    meter.add_child("convert cpu", 3 * 2**30, alongside=2**30)
    with meter.phase("convert cpu"):
        pass
    peaks, seconds = phases_so_far(["noise", *lines])
    assert peaks["reference"] == meter.summary()["reference"]
    assert peaks["convert cpu"] == 4096  # the child and this process
    assert set(seconds) == {"reference", "convert cpu"}
    assert seconds["reference"] == round(meter.seconds["reference"], 1)
