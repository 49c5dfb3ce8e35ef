"""Exact and approximate time synchronization of several message streams, with message_filters' API.

Works on plain objects and needs no ROS graph: a message is anything with ``.header.stamp.sec/.nanosec``
(``builtin_interfaces/Time``), ``.header.stamp.nanoseconds`` (``rclpy.time.Time``), or whatever a ``stamp_key``
function understands. Inputs are :class:`SimpleFilter`-like sources (anything with ``registerCallback``), so
``message_filters.Subscriber`` and this module's classes can be mixed.

The matching rules follow message_filters' Python implementation (Jazzy-Kilted):

* ``TimeSynchronizer``: a set is emitted when every input holds a message with the same stamp; older sets are
  dropped once a newer one was emitted (as the C++ ExactTime policy does), so output stamps never go back.
* ``ApproximateTimeSynchronizer``: on each message, insert it, trim its queue to ``queue_size`` (oldest first),
  gather the messages of every other input whose stamps lie within ``slop`` of it, and emit the first
  combination (closest stamps first) whose spread ``max - min`` is below ``slop``; the emitted messages are
  deleted.

Deliberate differences from message_filters, each closing one of its known weaknesses:

* Callbacks run outside the lock, so a slow or re-entrant callback never blocks other inputs, and an exception
  in a callback is logged and counted instead of leaving the lock held (upstream deadlocks).
* Stamps never come from the wall clock: a message without a header is rejected (logged, counted in
  ``rejected``) unless a ``stamp_key`` is given; ``allow_headerless=True`` without a ``stamp_key`` and
  ``sync_arrival_time=True`` are refused at construction.
"""

from __future__ import annotations

import itertools
import logging
import math
import threading
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from anon_ros.core.errors import AnonRosError, InputError

_LOG = logging.getLogger(__name__)

StampKey = Callable[[Any], int]
"""Returns a message's stamp in integer nanoseconds; raises :class:`MissingStampError` if it has none."""

Callback = Callable[..., Any]


class SyncError(AnonRosError):
    """A synchronizer was configured in a way that cannot work (e.g. a request for wall-clock stamps)."""


class MissingStampError(InputError):
    """A message has no usable timestamp (no ``header.stamp`` and no ``stamp_key`` that understands it)."""


class FilterLike(Protocol):
    """What a synchronizer needs from an input: message_filters' ``registerCallback``."""

    def registerCallback(self, cb: Callback, *args: Any) -> int:  # noqa: N802 - message_filters' name
        """Call ``cb(msg, *args)`` for every message this input outputs; return a connection id."""
        ...


def stamp_to_ns(stamp: Any) -> int:
    """Convert a ``builtin_interfaces/Time``-like (``sec``/``nanosec``) or ``rclpy.time.Time``-like stamp to ns."""
    if hasattr(stamp, 'nanoseconds'):
        return int(stamp.nanoseconds)
    try:
        sec = int(stamp.sec)
        nanosec = int(stamp.nanosec)
    except (AttributeError, TypeError, ValueError) as err:
        msg = f'expected a stamp with .sec/.nanosec or .nanoseconds, got {type(stamp).__name__}'
        raise MissingStampError(msg) from err
    if not 0 <= nanosec < 1_000_000_000:
        msg = f'stamp nanosec must be in [0, 1e9), got {nanosec}'
        raise MissingStampError(msg)
    return sec * 1_000_000_000 + nanosec


def header_stamp_ns(msg: Any) -> int:
    """Default stamp key: ``msg.header.stamp`` in nanoseconds."""
    header = getattr(msg, 'header', None)
    stamp = getattr(header, 'stamp', None)
    if stamp is None:
        msg_text = f'{type(msg).__name__} has no header.stamp; pass a stamp_key to synchronize it'
        raise MissingStampError(msg_text)
    return stamp_to_ns(stamp)


class SimpleFilter:
    """Base of every filter here: holds callbacks and signals messages to them (message_filters' API).

    A callback that raises is logged and counted in ``callback_errors``; the other callbacks still run and the
    caller (a subscription, another filter) never sees the exception.
    """

    def __init__(self) -> None:
        self.callbacks: dict[int, tuple[Callback, tuple[Any, ...]]] = {}
        self.callback_errors = 0
        self._next_connection = 0
        self._callbacks_lock = threading.Lock()

    def registerCallback(self, cb: Callback, *args: Any) -> int:  # noqa: N802 - message_filters' name
        """Call ``cb(*msgs, *args)`` on every output; returns a connection id for :meth:`unregisterCallback`."""
        with self._callbacks_lock:
            conn = self._next_connection
            self._next_connection += 1
            self.callbacks[conn] = (cb, args)
        return conn

    def unregisterCallback(self, conn: int) -> None:  # noqa: N802 - message_filters' naming style
        """Remove a callback registered with :meth:`registerCallback`; unknown ids are ignored."""
        with self._callbacks_lock:
            self.callbacks.pop(conn, None)

    def signalMessage(self, *msgs: Any) -> None:  # noqa: N802 - message_filters' name
        """Call every registered callback with ``msgs``; never raises on a callback's behalf."""
        with self._callbacks_lock:
            targets = list(self.callbacks.values())
        for cb, args in targets:
            try:
                cb(*(msgs + args))
            except Exception:  # noqa: BLE001 - a user callback must not break the filter chain
                self.callback_errors += 1
                _LOG.exception('%s: callback %r raised; continuing', type(self).__name__, cb)


class MessageSource(SimpleFilter):
    """An input fed by hand (tests, bag readers, a plain rclpy subscription callback): ``add(msg)`` signals it."""

    def add(self, msg: Any) -> None:
        """Pass ``msg`` on to every connected filter."""
        self.signalMessage(msg)


class TimeSynchronizer(SimpleFilter):
    """Emit one message per input when all inputs hold a message with exactly the same stamp.

    ``queue_size`` is how many messages each input keeps (by stamp) while waiting for its set to complete.
    """

    def __init__(self, fs: Sequence[FilterLike], queue_size: int, *, stamp_key: StampKey | None = None) -> None:
        super().__init__()
        if isinstance(queue_size, bool) or not isinstance(queue_size, int) or queue_size < 1:
            msg = f'queue_size must be an int >= 1, got {queue_size!r}'
            raise SyncError(msg)
        self.queue_size = queue_size
        self.stamp_key: StampKey = stamp_key if stamp_key is not None else header_stamp_ns
        self.rejected = 0
        self.lock = threading.Lock()
        self.queues: list[dict[int, Any]] = []
        self.input_connections: list[int] = []
        self._last_emitted_ns: int | None = None
        self.connectInput(fs)

    def connectInput(self, fs: Sequence[FilterLike]) -> None:  # noqa: N802 - message_filters' name
        """Connect to the inputs ``fs`` (replaces any previous inputs and clears the queues)."""
        if len(fs) < 1:
            msg = 'a synchronizer needs at least one input'
            raise SyncError(msg)
        with self.lock:
            self.queues = [{} for _ in fs]
            self._last_emitted_ns = None
        self.input_connections = [
            f.registerCallback(self.add, q, i) for i, (f, q) in enumerate(zip(fs, self.queues, strict=True))
        ]

    def _stamp_of(self, msg: Any) -> int | None:
        """The message's stamp in ns, or None (logged, counted) when it has none: never a wall-clock stand-in."""
        try:
            return self.stamp_key(msg)
        except MissingStampError as err:
            self.rejected += 1
            if self.rejected == 1 or self.rejected % 100 == 0:  # throttle: a headerless stream repeats every message
                _LOG.warning('%s: dropped message (%d so far): %s', type(self).__name__, self.rejected, err)
            return None

    def _queue_index(self, my_queue: dict[int, Any], my_queue_index: int | None) -> int:
        if my_queue_index is not None:
            if not 0 <= my_queue_index < len(self.queues) or self.queues[my_queue_index] is not my_queue:
                msg = f'queue index {my_queue_index} does not match the given queue'
                raise SyncError(msg)
            return my_queue_index
        for i, q in enumerate(self.queues):
            if q is my_queue:
                return i
        msg = 'the given queue is not one of this synchronizer\'s queues'
        raise SyncError(msg)

    def _trim(self, queue: dict[int, Any]) -> None:
        while len(queue) > self.queue_size:
            del queue[min(queue)]

    def add(self, msg: Any, my_queue: dict[int, Any], my_queue_index: int | None = None) -> None:
        """Insert ``msg`` into input ``my_queue`` and emit every complete set (message_filters' signature)."""
        stamp = self._stamp_of(msg)
        if stamp is None:
            return
        ready: list[list[Any]] = []
        with self.lock:
            index = self._queue_index(my_queue, my_queue_index)
            if self._last_emitted_ns is not None and stamp <= self._last_emitted_ns:
                return  # its set is gone: emitting it now would send time backwards
            queue = self.queues[index]
            queue[stamp] = msg
            self._trim(queue)
            common = set.intersection(*(set(q) for q in self.queues))
            for t in sorted(common):
                ready.append([q.pop(t) for q in self.queues])
                self._last_emitted_ns = t
            if ready:
                last = self._last_emitted_ns
                for q in self.queues:
                    for t in [t for t in q if last is not None and t < last]:
                        del q[t]
        for msgs in ready:  # outside the lock: callbacks may be slow, raise, or feed this synchronizer again
            self.signalMessage(*msgs)


class ApproximateTimeSynchronizer(TimeSynchronizer):
    """Emit one message per input when their stamps lie within ``slop`` seconds of each other.

    Signature of message_filters (Kilted): ``(fs, queue_size, slop, queue_offset=False, allow_headerless=False,
    sync_arrival_time=False)``; Jazzy/Humble callers that pass ``allow_headerless`` by keyword work unchanged.
    ``queue_offset`` is False or one integer offset in nanoseconds per input, added to that input's stamps
    before matching (for a sensor with a known, calibrated lag). ``stamp_key`` (keyword-only, ours) replaces the
    header lookup, e.g. for headerless audio chunks that carry a sample-count time.
    """

    def __init__(
        self,
        fs: Sequence[FilterLike],
        queue_size: int,
        slop: float,
        queue_offset: Sequence[int] | bool = False,
        allow_headerless: bool = False,
        sync_arrival_time: bool = False,
        *,
        stamp_key: StampKey | None = None,
    ) -> None:
        if isinstance(slop, bool) or not isinstance(slop, (int, float)) or not math.isfinite(slop) or slop < 0:
            msg = f'slop must be a finite number of seconds >= 0, got {slop!r}'
            raise SyncError(msg)
        if sync_arrival_time:
            msg = ('sync_arrival_time=True would stamp messages with the wall clock at arrival; anon_ros '
                   'synchronizes on sensor stamps only: pass stamp_key for messages that carry their time elsewhere')
            raise SyncError(msg)
        if allow_headerless and stamp_key is None:
            msg = ('allow_headerless=True would stamp headerless messages with the wall clock; pass stamp_key '
                   'to say where their time comes from')
            raise SyncError(msg)
        # Set before the base class connects the inputs: a message may arrive from another thread right away.
        self.queue_offset = self._check_offsets(queue_offset, len(fs))
        self.slop = slop
        self.slop_ns = round(slop * 1e9)
        self.allow_headerless = allow_headerless
        super().__init__(fs, queue_size, stamp_key=stamp_key)

    @staticmethod
    def _check_offsets(queue_offset: Sequence[int] | bool, n_inputs: int) -> tuple[int, ...]:
        if queue_offset is False or queue_offset is None:
            return (0,) * n_inputs
        if queue_offset is True:
            msg = 'queue_offset must be False or one integer nanosecond offset per input, got True'
            raise SyncError(msg)
        offsets = tuple(queue_offset)
        if len(offsets) != n_inputs or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets):
            msg = f'queue_offset must hold {n_inputs} integer nanosecond offsets, got {queue_offset!r}'
            raise SyncError(msg)
        return offsets

    def add(self, msg: Any, my_queue: dict[int, Any], my_queue_index: int | None = None) -> None:
        """Insert ``msg``; emit the closest set within ``slop`` that contains it, if any."""
        raw = self._stamp_of(msg)
        if raw is None:
            return
        matched: list[Any] | None = None
        with self.lock:
            index = self._queue_index(my_queue, my_queue_index)
            stamp = raw + self.queue_offset[index]
            queue = self.queues[index]
            queue[stamp] = msg
            self._trim(queue)
            if stamp in queue:  # trimming may have dropped it (older than a full queue)
                matched = self._match(index, stamp)
        if matched is not None:
            self.signalMessage(*matched)

    def _match(self, index: int, stamp: int) -> list[Any] | None:
        """Find, remove and return the first set (closest stamps first) with spread < slop. Lock held."""
        candidates: list[list[int]] = []
        for i, q in enumerate(self.queues):
            if i == index:
                candidates.append([stamp])
                continue
            near = sorted((s for s in q if abs(s - stamp) <= self.slop_ns), key=lambda s: abs(s - stamp))
            if not near:
                return None
            candidates.append(near)
        for combo in itertools.product(*candidates):
            if max(combo) - min(combo) < self.slop_ns:
                return [q.pop(t) for q, t in zip(self.queues, combo, strict=True)]
        return None
