"""Which topics carry anonymized data: announced by anonymizers, checked by sinks before they use a topic.

A sink that leaves the graph (a recorder, a virtual camera or microphone for a call) must never be fed raw sensor
data by a wiring mistake. Every anonymizer announces, on a transient-local topic, the fully qualified names of the
topics it publishes anonymized data on. A sink accepts an input topic only when it has at least one publisher and
*every* publisher of it is a node that announced that topic; otherwise it refuses, unless forced by a parameter.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import String

ANNOUNCE_TOPIC = '/anon_ros/anonymized_outputs'
# Transient local: a sink that starts after the anonymizer still receives its announcement. Each anonymizer keeps
# its latest announcement (it always lists all of its topics).
ANNOUNCE_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
)
# The reader's history is shared by all anonymizers (the topic has no key): with depth 1, the announcements that
# several anonymizers deliver at once on discovery would overwrite each other before the callback takes them.
ANNOUNCE_READER_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST, depth=100, reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
)


def _qualified_node(namespace: str, name: str) -> str:
    return f'{namespace.rstrip("/")}/{name}'


class AnonymizedOutputs:
    """Announce the anonymized topics of ``node``: call ``add`` for each anonymized publisher."""

    def __init__(self, node: Node) -> None:
        self._node = node
        self._topics: set[str] = set()
        self._publisher = node.create_publisher(String, ANNOUNCE_TOPIC, ANNOUNCE_QOS)

    def add(self, publisher: object) -> None:
        self._topics.add(publisher.topic_name)  # type: ignore[attr-defined] - rclpy Publisher, fully qualified
        node = _qualified_node(self._node.get_namespace(), self._node.get_name())
        self._publisher.publish(String(data=json.dumps({'node': node, 'topics': sorted(self._topics)})))


@dataclass(frozen=True)
class Verdict:
    """Whether a topic may feed a sink, and why."""

    allowed: bool
    reason: str


class ProvenanceChecker:
    """Collect announcements and judge whether each publisher of a topic is an anonymizer."""

    def __init__(self, node: Node) -> None:
        self._node = node
        self._announced: dict[str, set[str]] = {}
        node.create_subscription(String, ANNOUNCE_TOPIC, self._on_announcement, ANNOUNCE_READER_QOS)

    def _on_announcement(self, msg: String) -> None:
        try:
            data = json.loads(msg.data)
            self._announced[str(data['node'])] = {str(t) for t in data['topics']}
        except (ValueError, KeyError, TypeError) as err:
            self._node.get_logger().warn(f'ignoring a malformed announcement on {ANNOUNCE_TOPIC}: {err}')

    def check(self, topic: str) -> Verdict:
        """Judge the fully qualified ``topic`` by its current publishers."""
        publishers = self._node.get_publishers_info_by_topic(topic)
        if not publishers:
            return Verdict(False, f'{topic} has no publisher yet')
        raw = sorted(
            _qualified_node(p.node_namespace, p.node_name)
            for p in publishers
            if topic not in self._announced.get(_qualified_node(p.node_namespace, p.node_name), set())
        )
        if raw:
            return Verdict(False, f'{topic} is published by {", ".join(raw)}, which did not announce it as anonymized')
        return Verdict(True, f'{topic}: every publisher is an anonymizer')

    def check_all(self, topics: Iterable[str]) -> dict[str, Verdict]:
        return {topic: self.check(topic) for topic in topics}
