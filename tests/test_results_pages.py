"""docs/results/*.md are rendered from docs/results/data/*.json: the
committed pages equal a fresh render, and every measurement says when,
where and how it was made."""

import importlib.util
import json

import pytest

from tests.conftest import REPO_ROOT

RESULTS = REPO_ROOT / "docs" / "results"


def _render_module():
    spec = importlib.util.spec_from_file_location(
        "results_render", RESULTS / "render.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_pages_equal_a_fresh_render():
    rendered = _render_module().render_all()
    on_disk = {path.name for path in RESULTS.glob("*.md")}
    assert on_disk == set(rendered), "a page is missing or not generated"
    for name, text in rendered.items():
        committed = (RESULTS / name).read_text(encoding="utf-8")
        assert committed == text, (
            f"docs/results/{name} is stale: run python docs/results/render.py"
        )


def test_every_measurement_has_date_machine_command_source():
    paths = sorted((RESULTS / "data").glob("*.json"))
    assert len(paths) >= 10
    for path in paths:
        entry = json.loads(path.read_text(encoding="utf-8"))
        assert entry["schema"] == "edge_backbones.results/1", path
        assert entry["date"][:4] == "2026" and len(entry["date"]) == 10
        assert entry["command"] and entry["source"], path
        machine = entry["machine"]
        assert machine["cpu"] and (machine["flags"] or machine["flags_note"]), (
            path
        )
        if "table_from" not in entry:
            width = len(entry["columns"])
            assert all(len(row) == width for row in entry["rows"]), path


def test_a_measurement_without_its_command_is_refused(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    entry = json.loads(
        (RESULTS / "data" / "op_profile.json").read_text(encoding="utf-8")
    )
    del entry["command"]
    (data / "op_profile.json").write_text(json.dumps(entry))
    with pytest.raises(ValueError, match="missing \\['command'\\]"):
        _render_module().render_all(str(data))
