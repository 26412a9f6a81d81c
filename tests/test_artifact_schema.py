"""The artifact contract: every target's golden sidecar against the schema.

tests/goldens/artifacts/ holds the sidecar of a real export of the tiny
backbone for every target, and of a compile of the npu one
(tests/goldens/make_artifact_goldens.py writes them). The Kotlin `:core`
tests read the same files and the same schema.
"""

import copy
import dataclasses
import json
import os
import pathlib

import pytest

from edge_backbones.core import json_schema, modes
from edge_backbones.core.artifact import (
    ABSENT,
    ARTIFACT_SCHEMA_ID,
    ARTIFACT_SCHEMA_VERSION,
    SCHEMA_COMPILED,
    ArtifactMetadata,
    artifact_schema,
    validate,
)
from edge_backbones.errors import ArtifactSchemaError, MetadataError
from edge_backbones.exporter import tflite_metadata
from edge_backbones.runtime.edge_model import EdgeModel
from tests import tiny
from tests.goldens.make_artifact_goldens import COMPILE_SOC, TARGETS

# the reference validator (test extra) the in-package one is held to
jsonschema = pytest.importorskip("jsonschema")

GOLDENS = pathlib.Path(__file__).parent / "goldens" / "artifacts"
NAMES = sorted(p.stem for p in GOLDENS.glob("*.json"))
COMPILED = f"npu_compiled_{COMPILE_SOC}"
REFERENCE = jsonschema.Draft202012Validator(artifact_schema())


def _golden(name):
    return json.loads((GOLDENS / f"{name}.json").read_text())


def _reference_errors(metadata):
    return sorted(
        (e.json_path, e.validator) for e in REFERENCE.iter_errors(metadata)
    )


def test_a_golden_for_every_target_and_a_compile():
    assert set(NAMES) == {*TARGETS, COMPILED}
    # the registry's device targets are all among them
    assert set(modes.TARGETS) <= set(TARGETS)


def test_the_schema_is_one_versioned_draft_2020_12_document():
    schema = artifact_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    json_schema.check_schema(schema)  # only keywords the subset enforces
    assert schema["$schema"].endswith("/draft/2020-12/schema")
    assert schema["$id"] == ARTIFACT_SCHEMA_ID
    assert schema["$id"].endswith(f"/{ARTIFACT_SCHEMA_VERSION}")


@pytest.mark.parametrize("name", NAMES)
def test_every_golden_validates_and_round_trips(name):
    metadata = _golden(name)
    assert _reference_errors(metadata) == []
    assert json_schema.errors(metadata, artifact_schema()) == []
    typed = ArtifactMetadata.from_dict(metadata)
    # exact: same keys, same order, same values
    assert json.dumps(typed.to_dict()) == json.dumps(metadata)
    assert typed.outputs["P2"].stride == 8
    assert typed.input.preprocessing.mean == [0.485, 0.456, 0.406]


def test_typed_fields_of_the_integer_targets():
    npu = ArtifactMetadata.from_dict(_golden("npu"))
    assert npu.input.dtype == "int16" and npu.scheme.io == "integer"
    assert npu.input.quantization.zero_point == 0
    assert npu.task is ABSENT and npu.compiled is ABSENT
    compiled = ArtifactMetadata.from_dict(_golden(COMPILED))
    assert compiled.is_compiled and compiled.schema == SCHEMA_COMPILED
    assert compiled.compiled.soc == COMPILE_SOC
    assert compiled.compiled.ops_on_npu == compiled.compiled.ops_total > 0
    assert compiled.compiled.source.fidelity_cpu == npu.fidelity
    assert compiled.fidelity is None  # set only by a verification on the NPU
    with pytest.raises(dataclasses.FrozenInstanceError):
        compiled.mode = "fp32"


# (name, edit, JSON path of the first problem): each breaks the contract
BROKEN = [
    ("fp32", lambda m: m["input"].pop("dtype"), "$.input.dtype"),
    ("int8_io", lambda m: m["outputs"]["P1"].update(dtype="int4"),
     "$.outputs.P1.dtype"),
    ("npu", lambda m: m["input"]["quantization"].update(scale=0.0),
     "$.input.quantization.scale"),
    ("fp16", lambda m: m.pop("model"), "$.model"),
    ("cpu", lambda m: m.update(schema="edge_backbones.tflite/3"), "$.schema"),
    # a compiled schema without its block, and a block without the schema
    (COMPILED, lambda m: m.pop("compiled"), "$.compiled"),
    ("npu", lambda m: m.update(compiled=_golden(COMPILED)["compiled"]),
     "$.compiled"),
    # numerics of a compile belong in `compiled`, not at the top
    ("npu_int8", lambda m: m.update(numerics_vs_cpu={}), "$.numerics_vs_cpu"),
    ("gpu", lambda m: m["graph"]["gpu_run"].pop("status"),
     "$.graph.gpu_run.status"),
    ("int8", lambda m: m["fidelity"]["levels"]["P1"].update(cosine="1"),
     "$.fidelity.levels.P1.cosine"),
    ("int8_mixed", lambda m: m["input"]["shape"].append(True),
     "$.input.shape[4]"),
    ("fp32", lambda m: m["input"]["preprocessing"].update(std=[1, 1]),
     "$.input.preprocessing.std"),
    ("fp32", lambda m: m.update(task={"kind": "segmentation"}),
     "$.task.class_names"),
    ("fp32", lambda m: m.update(task={"kind": "detector"}), "$.task.kind"),
]  # fmt: skip


@pytest.mark.parametrize("name, edit, field", BROKEN)
def test_a_broken_golden_is_refused_naming_the_field(name, edit, field):
    metadata = _golden(name)
    edit(metadata)
    assert _reference_errors(metadata), "jsonschema accepts it too"
    with pytest.raises(ArtifactSchemaError) as info:
        validate(metadata, "the golden")
    assert info.value.field == field
    assert info.value.schema_version == ARTIFACT_SCHEMA_VERSION
    assert f"at {field}:" in str(info.value)
    assert f"version {ARTIFACT_SCHEMA_VERSION}" in str(info.value)
    assert isinstance(info.value, MetadataError)


def test_the_task_block_of_the_models_to_come():
    metadata = _golden("fp32")
    metadata["task"] = {
        "kind": "segmentation",
        "class_names": ["background", "road"],
        "num_classes": 2,
    }
    assert _reference_errors(metadata) == []
    typed = ArtifactMetadata.from_dict(metadata)
    assert typed.task.class_names == ["background", "road"]
    assert typed.to_dict() == metadata
    metadata["task"] = {"kind": "sam_encoder"}
    assert ArtifactMetadata.from_dict(metadata).task.kind == "sam_encoder"


def _mutations(metadata, path=()):
    """(description, mutated copy) for each leaf and object: a wrong type, a
    negative number, null, or the key removed. A list's first two items
    stand for the rest; the model's free-form config is skipped."""
    node = metadata
    for key in path:
        node = node[key]
    items = node.items() if isinstance(node, dict) else enumerate(node[:2])
    for key, value in list(items):
        where = (*path, key)
        if where == ("model", "config"):
            continue
        if isinstance(value, (dict, list)) and value:
            yield from _mutations(metadata, where)
        edits = [
            lambda t, k=key, r=r: t.__setitem__(k, r) for r in ("x", -1, None)
        ]
        if isinstance(node, dict):
            edits.append(lambda t, k=key: t.__delitem__(k))
        for index, edit in enumerate(edits):
            copied = copy.deepcopy(metadata)
            target = copied
            for part in path:
                target = target[part]
            edit(target)
            yield f"{where} edit {index}", copied


# one golden of each shape: quantized I/O, a GPU run, int16 I/O, compiled
@pytest.mark.parametrize("name", ["int8_io", "gpu", "npu", COMPILED])
def test_the_subset_agrees_with_jsonschema_on_every_edit(name):
    """The in-package validator and the reference one accept and refuse
    the same edits of the goldens."""
    schema = artifact_schema()
    checked = refused = 0
    for what, mutated in _mutations(_golden(name)):
        ours = json_schema.errors(mutated, schema)
        theirs = _reference_errors(mutated)
        assert bool(ours) == bool(theirs), (what, ours, theirs)
        checked += 1
        refused += bool(ours)
    assert checked > 150 and refused > checked // 2


def test_the_runtime_refuses_embedded_metadata_that_breaks_it(tmp_path):
    contents = tiny.convert_two_conv_all(str(tmp_path))
    metadata = tiny.make_metadata()
    metadata["outputs"]["P1"]["dtype"] = "float64"
    path = tiny.write_with_metadata(
        tmp_path / "bad.tflite", contents["f32"], metadata
    )
    with pytest.raises(ArtifactSchemaError, match=r"\$\.outputs\.P1\.dtype"):
        EdgeModel(path)
    good = tiny.write_with_metadata(
        tmp_path / "good.tflite", contents["f32"], tiny.make_metadata()
    )
    model = EdgeModel(good)
    assert model.metadata["mode"] == "fp32"
    assert model.artifact.outputs["P1"].stride == 2
    assert model.artifact.to_dict() == model.metadata


def test_the_writer_refuses_metadata_that_breaks_it(tmp_path):
    contents = tiny.convert_two_conv_all(str(tmp_path))
    metadata = tiny.make_metadata()
    del metadata["graph"]
    path = str(tmp_path / "x.tflite")
    with pytest.raises(ArtifactSchemaError, match=r"at \$\.graph:"):
        tflite_metadata.write_artifact(path, contents["f32"], metadata)
    assert not os.path.exists(path)
    tflite_metadata.write_artifact(path, contents["f32"], tiny.make_metadata())
    assert EdgeModel(path).artifact.graph.op_histogram == {"CONV_2D": 2}
