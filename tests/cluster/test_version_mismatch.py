"""A driver whose Ray differs from the cluster's: Ray's own version check
refuses it, and `connect` turns that into a ClusterError naming the
address and both versions (on the stage's cluster, .ci/stages/cluster.sh)."""

import os

import pytest

from edge_backbones.errors import ClusterError

ADDRESS = os.environ.get("EDGE_BACKBONES_CLUSTER_ADDRESS")
pytestmark = [
    pytest.mark.cluster_stage,
    pytest.mark.skipif(
        not ADDRESS, reason="needs the Ray cluster .ci/stages/cluster.sh"
    ),
]


def test_a_ray_version_mismatch_names_the_address_and_both_versions(
    monkeypatch,
):
    import ray
    import ray._private.utils as ray_utils

    from edge_backbones.report.cluster import connect

    ray.shutdown()  # a driver still joined from an earlier test
    python = ray_utils.compute_version_info()[1]
    # this driver claims an older Ray than the one the cluster runs
    monkeypatch.setattr(
        ray_utils, "compute_version_info", lambda: ("2.0.0", python)
    )
    try:
        with pytest.raises(ClusterError) as caught:
            connect(ADDRESS)
    finally:
        ray.shutdown()
    message = str(caught.value)
    assert f"'{ADDRESS}'" in message
    assert "Version mismatch" in message
    assert "Ray: 2.0.0" in message and f"Ray: {ray.__version__}" in message
