"""Test-wide settings: DDS stays on this machine, in a domain of its own; a fresh rclpy graph per test.

scripts/test.sh (the README's test command) already exports these variables and runs pytest inside a fresh network
namespace; setting them here as well keeps a bare ``pytest`` run on loopback too.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from anon_ros.cli import ensure_ament_prefix
from anon_ros.dds import apply_local_dds_env

# Before anything imports rclpy: the middleware reads these when the first context starts.
apply_local_dds_env(domain_id=int(os.environ['ROS_DOMAIN_ID']) if 'ROS_DOMAIN_ID' in os.environ else None)
ensure_ament_prefix()


@pytest.fixture
def ros_graph() -> Iterator[object]:
    """A private rclpy context with an executor spinning in the background (anon_ros.testing.ros_graph)."""
    from anon_ros.testing.ros_graph import RosGraph

    graph = RosGraph()
    try:
        yield graph
    finally:
        graph.shutdown()
