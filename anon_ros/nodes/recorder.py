"""``recorder``: write anonymized topics into a rosbag2 bag (MCAP or sqlite3) that survives being killed.

Records the topics listed in the ``topics`` parameter (relative names resolve in the node's namespace; a recorder
selects topics by name the way ``ros2 bag record`` does, so here the names are data, not wiring). A topic is only
recorded while *every* publisher of it announced it as anonymized (:mod:`anon_ros.nodes.provenance`); the check is
repeated every ``check_interval`` seconds, and each message is also checked against the publishers that were judged
(by publisher GID), so a raw publisher that joins between two checks is never written. A topic that gains a
non-anonymizer publisher is unsubscribed and logged as an error; it resumes when only anonymizers publish it again.
``allow_unanonymized`` records topics regardless (its use is stored in the bag's ``custom_data``).

Messages arrive serialized (raw subscriptions: no deserialization), are stamped with their receive time, queued in
memory (``max_cache_mb``, overflow drops and counts) and written by a writer thread, which flushes the bag every
``flush_interval`` seconds: a recorder killed with SIGKILL loses at most that much. ``anon-ros bag-reindex`` makes such
a bag fully readable again.
"""

from __future__ import annotations

import datetime
import enum
import importlib
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rosbags.interfaces import (
    Qos,
    QosDurability,
    QosHistory,
    QosLiveliness,
    QosReliability,
    QosTime,
)

from anon_ros.bags import (
    BagError,
    BagWriter,
    SplitPolicy,
    StorageFormat,
    TopicType,
    resolve_type,
)
from anon_ros.nodes.common import ParameterError, declare, declare_enum, run
from anon_ros.nodes.provenance import ProvenanceChecker

NS = 1_000_000_000


class TopicState(enum.Enum):
    """Where one requested topic stands."""

    WAITING = 'waiting'  # no publisher yet
    RECORDING = 'recording'
    REFUSED = 'refused'  # a publisher did not announce it as anonymized (or the type cannot be recorded)


@dataclass
class _Topic:
    name: str
    state: TopicState = TopicState.WAITING
    reason: str = ''
    bag_id: int | None = None
    msgtype: str | None = None
    subscription: Any = None
    allowed_gids: frozenset[bytes] = frozenset()
    received: int = 0
    rejected: int = 0  # from a publisher that was not judged an anonymizer
    dropped: int = 0  # cache full


def _time(ns: int) -> QosTime:
    return QosTime(ns // NS, ns % NS)


def rosbags_qos(profile: QoSProfile) -> Qos:
    """rclpy QoS (as offered by a publisher) -> the rosbags record stored in ``offered_qos_profiles``."""
    def enum_of(target: Any, value: Any) -> Any:
        try:
            return target(int(value))
        except ValueError:
            return target.UNKNOWN

    return Qos(
        history=enum_of(QosHistory, profile.history),
        depth=int(profile.depth),
        reliability=enum_of(QosReliability, profile.reliability),
        durability=enum_of(QosDurability, profile.durability),
        deadline=_time(profile.deadline.nanoseconds),
        lifespan=_time(profile.lifespan.nanoseconds),
        liveliness=enum_of(QosLiveliness, profile.liveliness),
        liveliness_lease_duration=_time(profile.liveliness_lease_duration.nanoseconds),
        avoid_ros_namespace_conventions=bool(profile.avoid_ros_namespace_conventions),
    )


def _message_class(msgtype: str) -> type:
    pkg, kind, name = msgtype.split('/')
    return getattr(importlib.import_module(f'{pkg}.{kind}'), name)


class RecorderNode(Node):
    """Subscribes (raw) to anonymized topics and writes them to a crash-safe rosbag2 bag."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__('recorder', **kwargs)
        topics = declare(self, 'topics', Parameter.Type.STRING_ARRAY, 'topics to record (relative to the namespace)')
        if not topics or any(not t for t in topics):
            raise ParameterError(f'parameter topics must list at least one topic name, got {list(topics or [])}')
        output = declare(self, 'output', '', 'bag directory to create (must not exist); "" = anon_bag_<date>_<time>')
        storage = declare_enum(self, 'storage', StorageFormat, StorageFormat.MCAP, 'rosbag2 storage plugin')
        max_size = declare(
            self, 'max_bag_size', 0, 'split into a new file after this many bytes (0 = never)',
            min_value=0, max_value=2**62,
        )
        max_duration = declare(
            self, 'max_bag_duration', 0.0, 'split into a new file after this many seconds (0 = never)',
            min_value=0.0, max_value=1e9,
        )
        self.flush_interval = declare(
            self, 'flush_interval', 1.0, 'seconds between flushes to disk (at most this much is lost on a crash)',
            min_value=0.05, max_value=600.0,
        )
        check_interval = declare(
            self, 'check_interval', 0.5, 'seconds between re-checks of who publishes each topic',
            min_value=0.05, max_value=60.0,
        )
        self.allow_unanonymized = declare(
            self, 'allow_unanonymized', False,
            'record topics even when a publisher did not announce them as anonymized (raw data may be recorded!)',
        )
        self.queue_depth = declare(
            self, 'queue_depth', 10, 'subscription history depth per topic', min_value=1, max_value=10000,
        )
        self.max_cache_bytes = 1024 * 1024 * declare(
            self, 'max_cache_mb', 512, 'MiB of received messages waiting for the disk; more are dropped and counted',
            min_value=1, max_value=65536,
        )

        if not output:
            output = datetime.datetime.now().strftime('anon_bag_%Y%m%d_%H%M%S')
        self.topics = [_Topic(self.resolve_topic_name(t)) for t in topics]
        if len({t.name for t in self.topics}) != len(self.topics):
            raise ParameterError(f'parameter topics lists a topic twice: {list(topics)}')
        custom = {'anon_ros.recorder': 'anonymized topics only'}
        if self.allow_unanonymized:
            custom['anon_ros.recorder'] = 'allow_unanonymized: topics may hold raw data'
        self.bag = BagWriter(
            Path(output), storage, SplitPolicy(int(max_size), int(max_duration * NS)), custom_data=custom,
        )
        self.checker = ProvenanceChecker(self)
        # Everything that touches the bag runs in the writer thread (sqlite3 connections are bound to their thread).
        self._queue: deque[tuple[Any, ...]] = deque()
        self._queued_bytes = 0
        self._cv = threading.Condition()
        self._stop = False
        self._bag_ids = 0
        self.written = 0
        self.write_errors = 0
        self._opened = threading.Event()
        self._open_error: BagError | None = None
        self._writer: threading.Thread | None = threading.Thread(target=self._write_loop, name='bag_writer', daemon=True)
        self._writer.start()
        self._opened.wait()
        if self._open_error is not None:
            self._writer = None
            raise ParameterError(f'parameter output: {self._open_error}')
        self._lock = threading.Lock()
        self.check_timer = self.create_timer(check_interval, self.check_topics)
        self.get_logger().info(
            f'recording to {self.bag.path} ({storage.value}) when anonymized: {", ".join(t.name for t in self.topics)}'
            + (' [allow_unanonymized: provenance NOT enforced]' if self.allow_unanonymized else '')
        )

    # -- provenance
    def check_topics(self) -> None:
        """Judge every requested topic by its current publishers; subscribe, pause or refuse accordingly."""
        with self._lock:
            for topic in self.topics:
                self._check(topic)

    def _check(self, topic: _Topic) -> None:
        infos = self.get_publishers_info_by_topic(topic.name)
        if not infos:
            if topic.state is TopicState.RECORDING:
                return  # publishers left; keep the subscription for when they return, nothing arrives meanwhile
            self._set(topic, TopicState.WAITING, f'{topic.name} has no publisher yet')
            return
        verdict = self.checker.check(topic.name)
        allowed, reason = verdict.allowed, verdict.reason
        if not allowed and self.allow_unanonymized:
            allowed, reason = True, f'{reason}; recorded anyway (allow_unanonymized)'
        types = {i.topic_type for i in infos}
        if allowed and len(types) != 1:
            allowed, reason = False, f'{topic.name} is published with several types: {sorted(types)}'
        if allowed and topic.msgtype is not None and types != {topic.msgtype}:
            allowed, reason = False, f'{topic.name} changed type from {topic.msgtype} to {sorted(types)}'
        if not allowed:
            if topic.subscription is not None:
                self.destroy_subscription(topic.subscription)
                topic.subscription = None
                topic.allowed_gids = frozenset()
            self._set(topic, TopicState.REFUSED, reason, error=True)
            return
        topic.allowed_gids = frozenset(bytes(i.endpoint_gid) for i in infos)
        if topic.subscription is None:
            try:
                self._subscribe(topic, infos)
            except (BagError, ImportError, AttributeError, ValueError) as err:
                self._set(topic, TopicState.REFUSED, f'cannot record {topic.name}: {err}', error=True)
                return
        self._set(topic, TopicState.RECORDING, reason, error=self.allow_unanonymized and not verdict.allowed)

    def _set(self, topic: _Topic, state: TopicState, reason: str, error: bool = False) -> None:
        if (state, reason) != (topic.state, topic.reason):
            log = self.get_logger()
            text = f'{topic.name}: {state.value} ({reason})'
            log.error(text) if error else log.info(text)
        topic.state, topic.reason = state, reason

    def _subscribe(self, topic: _Topic, infos: Sequence[Any]) -> None:
        msgtype = infos[0].topic_type
        if topic.bag_id is None:
            ttype = resolve_type(msgtype)
            graph_hash = str(infos[0].topic_type_hash)
            if graph_hash.startswith('RIHS01_') and graph_hash != ttype.rihs01:
                # The publisher's definition differs from the one we would store: record it with the hash it has,
                # but say so (a reader will find the stored definition does not match).
                self.get_logger().warn(f'{topic.name}: publisher type hash {graph_hash} != Kilted {ttype.rihs01}')
                ttype = TopicType(ttype.msgtype, ttype.msgdef, graph_hash, ttype.msgdef_format)
            qos = [rosbags_qos(i.qos_profile) for i in infos]
            with self._cv:
                self._queue.append(('topic', topic.name, ttype, qos))
                self._cv.notify()
            topic.bag_id = self._bag_ids  # BagWriter numbers topics in the order they are added
            self._bag_ids += 1
            topic.msgtype = msgtype
        reliable = all(i.qos_profile.reliability == ReliabilityPolicy.RELIABLE for i in infos)
        qos_in = QoSProfile(
            history=HistoryPolicy.KEEP_LAST, depth=self.queue_depth,
            reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
            durability=DurabilityPolicy.VOLATILE,
        )
        topic.subscription = self.create_subscription(
            _message_class(msgtype), topic.name, lambda data, info, t=topic: self._on_message(t, data, info),
            qos_in, raw=True,
        )

    # -- data path
    def _on_message(self, topic: _Topic, data: bytes, info: dict[str, Any]) -> None:
        gid = info.get('publisher_gid') or {}
        if not self.allow_unanonymized and bytes(gid.get('data', b'')) not in topic.allowed_gids:
            topic.rejected += 1
            self.get_logger().error(
                f'{topic.name}: dropped a message from a publisher not judged an anonymizer', throttle_duration_sec=5.0
            )
            return
        topic.received += 1
        stamp = int(info.get('received_timestamp') or time.time_ns())
        with self._cv:
            if self._queued_bytes + len(data) > self.max_cache_bytes:
                topic.dropped += 1
                self.get_logger().warn(f'{topic.name}: disk too slow, message dropped', throttle_duration_sec=5.0)
                return
            assert topic.bag_id is not None
            self._queue.append(('msg', topic.bag_id, stamp, data))
            self._queued_bytes += len(data)
            self._cv.notify()

    def _write_loop(self) -> None:
        try:
            self.bag.open()
        except BagError as err:
            self._open_error = err
            return
        finally:
            self._opened.set()
        last_flush = time.monotonic()
        while True:
            with self._cv:
                if not self._queue and not self._stop:
                    self._cv.wait(timeout=max(0.01, self.flush_interval - (time.monotonic() - last_flush)))
                batch = list(self._queue)
                self._queue.clear()
                self._queued_bytes = 0
                stop = self._stop
            try:
                for item in batch:
                    if item[0] == 'msg':
                        self.bag.write(item[1], item[2], item[3])
                        self.written += 1
                    else:
                        self.bag.add_topic(item[1], item[2], item[3])
                if time.monotonic() - last_flush >= self.flush_interval:
                    self.bag.flush()
                    last_flush = time.monotonic()
                if stop and not batch:
                    self.bag.close()
                    return
            except (OSError, BagError, sqlite3.Error) as err:  # disk full, removed directory...
                self.write_errors += 1
                self.get_logger().error(f'cannot write {self.bag.path}: {err}', throttle_duration_sec=5.0)
                if stop:
                    return

    def stats(self) -> dict[str, dict[str, Any]]:
        """Per topic: state, messages received, rejected (provenance) and dropped (cache full); written in total."""
        return {
            t.name: {'state': t.state.value, 'received': t.received, 'rejected': t.rejected, 'dropped': t.dropped}
            for t in self.topics
        }

    def destroy_node(self) -> None:
        writer = getattr(self, '_writer', None)
        if writer is not None:
            with self._cv:
                self._stop = True
                self._cv.notify()
            writer.join()
            self.get_logger().info(f'closed {self.bag.path}: {self.bag.message_counts}; {self.stats()}')
            self._writer = None
        super().destroy_node()


def main(args: Sequence[str] | None = None) -> int:
    return run(RecorderNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
