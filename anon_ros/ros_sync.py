"""Synchronizers and subscribers for the node layer: message_filters when installed, ``anon_ros.core.sync`` else.

The only module besides the nodes that may import rclpy or message_filters, and it does so lazily inside the
functions, so importing it costs nothing on a machine without ROS. Whichever implementation is used:

* the user callback is wrapped so an exception is logged instead of propagating (upstream Python
  synchronizers call back while holding their lock, and an escaping exception can leave it held);
* subscriptions default to sensor-data QoS (best effort, keep last 5) rather than upstream's reliable depth 10,
  which stalls a camera stream behind retransmissions;
* ``sync_arrival_time`` and headerless wall-clock stamps are refused: time comes from the sensor.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import logging
from collections.abc import Sequence
from typing import Any

from anon_ros.core.sync import (
    ApproximateTimeSynchronizer,
    Callback,
    FilterLike,
    SimpleFilter,
    StampKey,
    SyncError,
    TimeSynchronizer,
)

_LOG = logging.getLogger(__name__)


def _import_message_filters() -> Any | None:
    """The ROS 2 ``message_filters`` module, or None when it (or rclpy under it) is not installed."""
    try:
        module = importlib.import_module('message_filters')
    except ImportError:
        return None
    # Debian's python3-message-filters is the ROS 1 package (rospy): not usable with rclpy.
    if not hasattr(module, 'ApproximateTimeSynchronizer') or 'rospy' in getattr(module, '__dict__', {}):
        return None
    return module


def guarded(callback: Callback) -> Callback:
    """Wrap ``callback`` so an exception is logged and swallowed rather than unwinding into a synchronizer."""

    @functools.wraps(callback)
    def _guarded(*args: Any) -> None:
        try:
            callback(*args)
        except Exception:  # noqa: BLE001 - the synchronizer must outlive a failing user callback
            _LOG.exception('synchronized callback %r raised; continuing', callback)

    return _guarded


def make_synchronizer(
    fs: Sequence[FilterLike],
    queue_size: int,
    slop: float | None = None,
    callback: Callback | None = None,
    *,
    queue_offset: Sequence[int] | None = None,
    stamp_key: StampKey | None = None,
    prefer_message_filters: bool = True,
) -> Any:
    """Build an exact (``slop is None``) or approximate synchronizer over ``fs`` and register ``callback``.

    Uses the real ``message_filters`` when it is importable and ``prefer_message_filters`` is set, and
    ``anon_ros.core.sync`` otherwise or when a ``stamp_key`` is needed (upstream has none). Keyword arguments
    that the installed upstream version does not know (``queue_offset`` before Kilted) fall back to ours too.
    """
    upstream = _import_message_filters() if prefer_message_filters and stamp_key is None else None
    sync: Any = None
    if upstream is not None:
        sync = _make_upstream(upstream, fs, queue_size, slop, queue_offset)
    if sync is None:
        if slop is None:
            sync = TimeSynchronizer(fs, queue_size, stamp_key=stamp_key)
        else:
            sync = ApproximateTimeSynchronizer(
                fs, queue_size, slop, queue_offset=list(queue_offset) if queue_offset else False, stamp_key=stamp_key
            )
    if callback is not None:
        # Ours already isolates callbacks; upstream needs the guard.
        sync.registerCallback(callback if isinstance(sync, TimeSynchronizer) else guarded(callback))
    return sync


def _make_upstream(
    upstream: Any, fs: Sequence[FilterLike], queue_size: int, slop: float | None, queue_offset: Sequence[int] | None
) -> Any | None:
    if slop is None:
        return upstream.TimeSynchronizer(list(fs), queue_size)
    cls = upstream.ApproximateTimeSynchronizer
    kwargs: dict[str, Any] = {}
    if queue_offset:
        if 'queue_offset' not in inspect.signature(cls).parameters:
            _LOG.info('message_filters has no queue_offset (pre-Kilted): using anon_ros.core.sync')
            return None
        kwargs['queue_offset'] = list(queue_offset)
    return cls(list(fs), queue_size, slop, **kwargs)


def make_subscriber(node: Any, msg_type: type, topic: str, qos_profile: Any = None, **kwargs: Any) -> Any:
    """A message_filters-style subscriber filter on ``topic``, sensor-data QoS unless ``qos_profile`` is given."""
    if qos_profile is None:
        from rclpy.qos import qos_profile_sensor_data

        qos_profile = qos_profile_sensor_data
    upstream = _import_message_filters()
    if upstream is not None:
        return upstream.Subscriber(node, msg_type, topic, qos_profile=qos_profile, **kwargs)
    return RosSubscriber(node, msg_type, topic, qos_profile, **kwargs)


class RosSubscriber(SimpleFilter):
    """Fallback for ``message_filters.Subscriber``: an rclpy subscription that signals each message."""

    def __init__(self, node: Any, msg_type: type, topic: str, qos_profile: Any, **kwargs: Any) -> None:
        super().__init__()
        self.node = node
        self.topic = topic
        self.sub = node.create_subscription(msg_type, topic, self.signalMessage, qos_profile, **kwargs)

    def getTopic(self) -> str:  # noqa: N802 - message_filters' name
        """The subscribed topic name."""
        return self.topic


__all__ = ['RosSubscriber', 'SyncError', 'guarded', 'make_subscriber', 'make_synchronizer']
