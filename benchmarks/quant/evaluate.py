"""Fidelity, op count and integer-only check of one .tflite on a case."""

import pickle

from edge_backbones.core import fidelity as fidelity_lib
from edge_backbones.core import modes
from edge_backbones.exporter import verify
from edge_backbones.runtime.edge_model import EdgeModel
from edge_backbones.runtime.model_file import read_model_file


def load(folder):
    with open(f"{folder}/data.pkl", "rb") as f:
        return pickle.load(f)


def evaluate(path, data, plan="npu"):
    content = open(path, "rb").read()
    parsed = read_model_file(content)
    integer = "n/a"
    if plan == "npu":
        try:
            verify.check_graph(modes.TARGETS[plan], content, True, [])
            integer = "yes"
        except Exception as exc:  # the message says why
            integer = "no: " + str(exc)[:90]
    outputs = EdgeModel(path, num_threads=2).run_batch(data["holdout"])
    fid = fidelity_lib.compare(data["reference"], outputs)
    name, worst = fidelity_lib.worst(fid)
    levels = {
        k: (round(v["cosine"], 5), round(v["sqnr_db"] or 999, 1))
        for k, v in fid["levels"].items()
    }
    sqnr = min(v[1] for v in levels.values())
    return {
        "worst_cos": round(worst["cosine"], 5),
        "worst_level": name,
        "min_sqnr": sqnr,
        "ops": parsed.op_count,
        "integer_only": integer,
        "levels": levels,
    }
