"""Time synchronizers on plain objects, no ROS graph (as message_filters' own test_approxsync does)."""

from __future__ import annotations

import random
import sys
import threading
import types
from dataclasses import dataclass, field
from typing import Any

import pytest

from anon_ros import ros_sync
from anon_ros.core.sync import (
    ApproximateTimeSynchronizer,
    MessageSource,
    MissingStampError,
    SimpleFilter,
    SyncError,
    TimeSynchronizer,
    header_stamp_ns,
    stamp_to_ns,
)


@dataclass(frozen=True)
class Stamp:
    sec: int
    nanosec: int


@dataclass(frozen=True)
class Header:
    stamp: Stamp


@dataclass(frozen=True)
class Msg:
    header: Header
    data: Any = None


@dataclass(frozen=True)
class Headerless:
    data: Any = None
    t_ns: int = 0


def msg(t: float, data: Any = None) -> Msg:
    ns = round(t * 1e9)
    return Msg(Header(Stamp(ns // 1_000_000_000, ns % 1_000_000_000)), data)


@dataclass
class Collector:
    sets: list[tuple[Any, ...]] = field(default_factory=list)

    def __call__(self, *msgs: Any) -> None:
        self.sets.append(msgs)


def stamps(sets: list[tuple[Any, ...]]) -> list[tuple[float, ...]]:
    return [tuple(round(header_stamp_ns(m) / 1e9, 6) for m in s) for s in sets]


def test_stamp_conversion() -> None:
    assert stamp_to_ns(Stamp(3, 5)) == 3_000_000_005
    assert stamp_to_ns(types.SimpleNamespace(nanoseconds=42)) == 42
    with pytest.raises(MissingStampError):
        stamp_to_ns(Stamp(1, 1_000_000_000))
    with pytest.raises(MissingStampError, match=r'no header\.stamp'):
        header_stamp_ns(Headerless())


def test_exact_pairs_equal_stamps_only() -> None:
    a, b = MessageSource(), MessageSource()
    ts = TimeSynchronizer([a, b], 5)
    out = Collector()
    ts.registerCallback(out)
    a.add(msg(1.0, 'a1'))
    b.add(msg(1.0001, 'b-near'))  # close is not equal
    assert out.sets == []
    b.add(msg(1.0, 'b1'))
    assert [(x.data, y.data) for x, y in out.sets] == [('a1', 'b1')]


def test_exact_scrambled_sequences_recombine() -> None:
    rng = random.Random(0)
    for n in range(1, 10):
        a, b = MessageSource(), MessageSource()
        ts = TimeSynchronizer([a, b], n)
        out = Collector()
        ts.registerCallback(out)
        seq_a = [msg(t, rng.random()) for t in range(n)]
        seq_b = [msg(t, rng.random()) for t in range(n)]
        for m in rng.sample(seq_a, n):
            a.add(m)
        for m in seq_b:  # in order: the exact filter never emits backwards in time
            b.add(m)
        assert out.sets == list(zip(seq_a, seq_b, strict=True))


def test_exact_drops_sets_older_than_the_last_emitted() -> None:
    a, b = MessageSource(), MessageSource()
    ts = TimeSynchronizer([a, b], 10)
    out = Collector()
    ts.registerCallback(out)
    a.add(msg(1.0))
    a.add(msg(2.0))
    b.add(msg(2.0))
    b.add(msg(1.0))  # late partner of an older set: output time must not go back
    assert stamps(out.sets) == [(2.0, 2.0)]
    assert all(len(q) == 0 for q in ts.queues)


def test_approx_pairs_within_slop() -> None:
    a, b = MessageSource(), MessageSource()
    ts = ApproximateTimeSynchronizer([a, b], 1, 0.1)
    out = Collector()
    ts.registerCallback(out)
    for t in range(10):
        out.sets.clear()
        ma, mb = msg(t, 33), msg(t + 0.05, 34)
        a.add(ma)
        assert out.sets == []
        b.add(mb)
        assert out.sets == [(ma, mb)]


def test_approx_rejects_pairs_outside_slop_and_at_exactly_slop() -> None:
    a, b = MessageSource(), MessageSource()
    ts = ApproximateTimeSynchronizer([a, b], 10, 0.1)
    out = Collector()
    ts.registerCallback(out)
    a.add(msg(1.0))
    b.add(msg(1.2))  # beyond slop
    b.add(msg(1.1))  # exactly slop: a candidate but spread is not < slop (upstream rule)
    assert out.sets == []
    b.add(msg(1.09))
    assert stamps(out.sets) == [(1.0, 1.09)]


def test_approx_picks_the_closest_candidate_and_deletes_emitted() -> None:
    a, b = MessageSource(), MessageSource()
    ts = ApproximateTimeSynchronizer([a, b], 10, 0.05)
    out = Collector()
    ts.registerCallback(out)
    b.add(msg(0.96))
    b.add(msg(1.01))
    b.add(msg(1.04))
    a.add(msg(1.0))
    assert stamps(out.sets) == [(1.0, 1.01)]
    assert sorted(ts.queues[1]) == [960_000_000, 1_040_000_000]
    assert ts.queues[0] == {}


def test_approx_scrambled_sequences_recombine() -> None:
    rng = random.Random(0)
    for n in range(1, 10):
        a, b = MessageSource(), MessageSource()
        seq_a = [msg(t, rng.random()) for t in range(n)]
        seq_b = [msg(t + 0.01, rng.random()) for t in range(n)]
        ts = ApproximateTimeSynchronizer([a, b], n, 0.1)
        out = Collector()
        ts.registerCallback(out)
        for m in rng.sample(seq_a, n):
            a.add(m)
        assert out.sets == []
        for m in rng.sample(seq_b, n):
            b.add(m)
        assert set(out.sets) == set(zip(seq_a, seq_b, strict=True))


def test_queue_trimming_drops_the_oldest() -> None:
    a, b = MessageSource(), MessageSource()
    ts = ApproximateTimeSynchronizer([a, b], 3, 0.1)
    out = Collector()
    ts.registerCallback(out)
    for t in range(5):
        a.add(msg(t))
    assert sorted(ts.queues[0]) == [2_000_000_000, 3_000_000_000, 4_000_000_000]
    b.add(msg(0.0))  # its partner was trimmed away
    b.add(msg(1.0))
    assert out.sets == []
    b.add(msg(4.0))
    assert stamps(out.sets) == [(4.0, 4.0)]
    # A message older than everything in a full queue is trimmed on arrival and never matched.
    for t in (5, 6, 7):
        a.add(msg(t))
    a.add(msg(1.0))  # b still holds 1.0, but a's queue is full of newer messages
    assert sorted(ts.queues[0]) == [5_000_000_000, 6_000_000_000, 7_000_000_000]
    assert len(out.sets) == 1


def test_three_inputs_need_all_within_slop() -> None:
    a, b, c = MessageSource(), MessageSource(), MessageSource()
    ts = ApproximateTimeSynchronizer([a, b, c], 10, 0.03)
    out = Collector()
    ts.registerCallback(out)
    a.add(msg(1.000, 'rgb'))
    b.add(msg(1.020, 'depth'))
    c.add(msg(1.040, 'audio-far'))  # within slop of depth but spread 40 ms > 30 ms
    assert out.sets == []
    c.add(msg(1.010, 'audio'))
    assert [tuple(m.data for m in s) for s in out.sets] == [('rgb', 'depth', 'audio')]
    assert stamps(out.sets) == [(1.0, 1.02, 1.01)]


def test_out_of_order_arrivals() -> None:
    a, b = MessageSource(), MessageSource()
    ts = ApproximateTimeSynchronizer([a, b], 10, 0.01)
    out = Collector()
    ts.registerCallback(out)
    for t in (0.3, 0.1, 0.2):
        a.add(msg(t))
    for t in (0.2, 0.3, 0.1):
        b.add(msg(t + 0.002))
    assert sorted(stamps(out.sets)) == [(0.1, 0.102), (0.2, 0.202), (0.3, 0.302)]


def test_callback_exception_does_not_deadlock_or_break_the_filter() -> None:
    a, b = MessageSource(), MessageSource()
    ts = ApproximateTimeSynchronizer([a, b], 10, 0.05)
    good = Collector()

    def bad(*_: Any) -> None:
        raise RuntimeError('boom')

    ts.registerCallback(bad)
    ts.registerCallback(good)
    done = threading.Event()

    def feed() -> None:
        for t in range(3):
            a.add(msg(t))
            b.add(msg(t))
        done.set()

    worker = threading.Thread(target=feed, daemon=True)
    worker.start()
    assert done.wait(5.0), 'synchronizer deadlocked after a callback raised'
    assert len(good.sets) == 3
    assert ts.callback_errors == 3
    assert ts.lock.acquire(timeout=1.0)
    ts.lock.release()


def test_callback_may_feed_the_same_synchronizer() -> None:
    """Callbacks run outside the lock, so re-entrance (a callback publishing into an input) cannot deadlock."""
    a, b = MessageSource(), MessageSource()
    ts = TimeSynchronizer([a, b], 10)
    out = Collector()

    def echo(ma: Msg, mb: Msg) -> None:
        out(ma, mb)
        t = header_stamp_ns(ma) / 1e9
        if t < 2:
            a.add(msg(t + 1))
            b.add(msg(t + 1))

    ts.registerCallback(echo)
    a.add(msg(0.0))
    b.add(msg(0.0))
    assert stamps(out.sets) == [(0.0, 0.0), (1.0, 1.0), (2.0, 2.0)]


def test_headerless_messages_are_rejected_not_wall_clock_stamped() -> None:
    a, b = MessageSource(), MessageSource()
    ts = ApproximateTimeSynchronizer([a, b], 10, 10.0)
    out = Collector()
    ts.registerCallback(out)
    a.add(msg(0.0))
    b.add(Headerless('x'))
    assert out.sets == []
    assert ts.rejected == 1
    assert ts.queues[1] == {}
    with pytest.raises(SyncError, match='wall clock'):
        ApproximateTimeSynchronizer([a, b], 10, 0.1, allow_headerless=True)
    with pytest.raises(SyncError, match='wall clock'):
        ApproximateTimeSynchronizer([a, b], 10, 0.1, sync_arrival_time=True)


def test_stamp_key_synchronizes_headerless_messages() -> None:
    a, b = MessageSource(), MessageSource()

    def key(m: Any) -> int:
        return m.t_ns if isinstance(m, Headerless) else header_stamp_ns(m)

    ts = ApproximateTimeSynchronizer([a, b], 10, 0.02, allow_headerless=True, stamp_key=key)
    out = Collector()
    ts.registerCallback(out)
    a.add(msg(1.0, 'frame'))
    b.add(Headerless('chunk', t_ns=1_010_000_000))
    assert [(x.data, y.data) for x, y in out.sets] == [('frame', 'chunk')]


def test_queue_offset_shifts_one_input() -> None:
    a, b = MessageSource(), MessageSource()
    # b lags a by 200 ms: offset b's stamps by -200 ms before matching.
    ts = ApproximateTimeSynchronizer([a, b], 10, 0.01, queue_offset=[0, -200_000_000])
    out = Collector()
    ts.registerCallback(out)
    a.add(msg(1.0))
    b.add(msg(1.2))
    assert stamps(out.sets) == [(1.0, 1.2)]
    with pytest.raises(SyncError):
        ApproximateTimeSynchronizer([a, b], 10, 0.01, queue_offset=[0])


@pytest.mark.parametrize(('queue_size', 'slop'), [(0, 0.1), (-1, 0.1), (1.5, 0.1), (5, -0.1), (5, float('nan'))])
def test_bad_configuration_is_refused(queue_size: Any, slop: float) -> None:
    with pytest.raises(SyncError):
        ApproximateTimeSynchronizer([MessageSource(), MessageSource()], queue_size, slop)


def test_plain_simplefilter_subclass_is_an_input() -> None:
    """A bare message_filters-style SimpleFilter driven with signalMessage works as an input."""

    class MockFilter(SimpleFilter):
        pass

    a, b = MockFilter(), MockFilter()
    ts = ApproximateTimeSynchronizer([a, b], 2, 0.1)
    out = Collector()
    ts.registerCallback(out)
    a.signalMessage(msg(5.0))
    b.signalMessage(msg(5.05))
    assert stamps(out.sets) == [(5.0, 5.05)]


def test_make_synchronizer_falls_back_to_ours(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, 'message_filters', None)  # import fails as on this machine
    a, b = MessageSource(), MessageSource()
    out = Collector()
    sync = ros_sync.make_synchronizer([a, b], 5, 0.05, out)
    assert isinstance(sync, ApproximateTimeSynchronizer)
    a.add(msg(1.0))
    b.add(msg(1.01))
    assert len(out.sets) == 1
    assert isinstance(ros_sync.make_synchronizer([a, b], 5), TimeSynchronizer)


def test_make_synchronizer_prefers_message_filters_and_guards_the_callback(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stand-in for ROS 2 message_filters (Jazzy signature: no queue_offset) that calls back under a lock."""
    fake = types.ModuleType('message_filters')

    class UpstreamApprox(SimpleFilter):
        def __init__(  # message_filters' (Jazzy) signature
            self, fs: list[Any], queue_size: int, slop: float, allow_headerless: bool = False  # noqa: ARG002
        ) -> None:
            super().__init__()
            self.fs, self.lock = fs, threading.Lock()
            for i, f in enumerate(fs):
                f.registerCallback(self.add, i)

        def add(self, m: Any, _index: int) -> None:
            self.lock.acquire()  # no try/finally, as in old upstream versions
            for cb, args in self.callbacks.values():
                cb(m, *args)
            self.lock.release()

    fake.ApproximateTimeSynchronizer = UpstreamApprox  # type: ignore[attr-defined]
    fake.TimeSynchronizer = UpstreamApprox  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, 'message_filters', fake)

    def bad(*_: Any) -> None:
        raise RuntimeError('boom')

    a, b = MessageSource(), MessageSource()
    sync = ros_sync.make_synchronizer([a, b], 5, 0.05, bad)
    assert isinstance(sync, UpstreamApprox)
    a.add(msg(1.0))
    assert sync.lock.acquire(timeout=1.0), 'upstream lock left held: callback was not guarded'
    sync.lock.release()
    # queue_offset is unknown to this upstream version: ours is used instead.
    assert isinstance(ros_sync.make_synchronizer([a, b], 5, 0.05, queue_offset=[0, 5]), ApproximateTimeSynchronizer)
