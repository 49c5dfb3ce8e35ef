"""Announcements of anonymized topics and the checks sinks make, through a real rclpy graph."""

from __future__ import annotations

from rclpy.qos import QoSProfile
from std_msgs.msg import String

from anon_ros.nodes.provenance import AnonymizedOutputs, ProvenanceChecker
from anon_ros.testing.ros_graph import wait_until


def test_late_sink_sees_every_anonymizer_announced_before_it(ros_graph) -> None:  # noqa: ANN001
    """Several anonymizers announce before the sink starts; none of their announcements may be lost."""
    names = [f'anonymizer_{i}' for i in range(4)]
    for name in names:
        node = ros_graph.node(name)
        AnonymizedOutputs(node).add(node.create_publisher(String, f'{name}/out', QoSProfile(depth=1)))
    sink = ros_graph.node('sink')
    checker = ProvenanceChecker(sink)
    assert wait_until(lambda: all(checker.check(f'/{n}/out').allowed for n in names), 10), [
        checker.check(f'/{n}/out').reason for n in names
    ]


def test_a_raw_publisher_on_an_announced_topic_is_refused(ros_graph) -> None:  # noqa: ANN001
    anonymizer = ros_graph.node('anonymizer')
    AnonymizedOutputs(anonymizer).add(anonymizer.create_publisher(String, 'video', QoSProfile(depth=1)))
    sink = ros_graph.node('sink')
    checker = ProvenanceChecker(sink)
    assert wait_until(lambda: checker.check('/video').allowed, 10)
    raw = ros_graph.node('raw_camera')
    raw.create_publisher(String, 'video', QoSProfile(depth=1))
    assert wait_until(lambda: not checker.check('/video').allowed, 10)
    assert 'published by /raw_camera' in checker.check('/video').reason


def test_topic_without_publishers_is_not_allowed(ros_graph) -> None:  # noqa: ANN001
    checker = ProvenanceChecker(ros_graph.node('sink'))
    verdict = checker.check('/nobody')
    assert not verdict.allowed and 'no publisher' in verdict.reason
