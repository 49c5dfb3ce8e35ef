"""AudioStreamClock: in order, jitter, gaps (filled or reset), duplicates and out-of-order chunks dropped."""

from __future__ import annotations

import pytest

from anon_ros.core.errors import InputError
from anon_ros.core.voice import AudioStreamClock, ClockAction, ClockConfig

SR = 16000
N = 160  # 10 ms
MS = 1_000_000
T0 = 1_700_000_000 * 1_000_000_000


def test_in_order_with_jitter_counts_samples() -> None:
    clock = AudioStreamClock()
    jitter = [0, 2, -3, 1, 3, -1]
    for k, j in enumerate(jitter):
        d = clock.observe(T0 + k * 10 * MS + j * MS, N, SR)
        assert d.action is ClockAction.IN_ORDER
        assert d.stream_sample == k * N  # the timeline follows the sample count, not the stamps
    assert clock.expected_stamp_ns() == T0 + len(jitter) * 10 * MS


def test_gap_filled_with_silence() -> None:
    clock = AudioStreamClock()
    clock.observe(T0, N, SR)
    d = clock.observe(T0 + 10 * MS + 50 * MS, N, SR)  # 50 ms lost
    assert d.action is ClockAction.GAP_FILL
    assert d.silence_samples == 800
    assert d.stream_sample == N + 800
    assert clock.observe(T0 + 70 * MS, N, SR).action is ClockAction.IN_ORDER


def test_long_gap_resets() -> None:
    clock = AudioStreamClock(ClockConfig(max_fill_s=0.2))
    clock.observe(T0, N, SR)
    d = clock.observe(T0 + 2_000 * MS, N, SR)
    assert d.action is ClockAction.RESET and d.stream_sample == 0
    assert clock.observe(T0 + 2_010 * MS, N, SR).action is ClockAction.IN_ORDER


@pytest.mark.parametrize('stamp_ms', [0, 10, 5])  # duplicate of the first, of the second, partial overlap
def test_overlap_dropped(stamp_ms: int) -> None:
    clock = AudioStreamClock()
    clock.observe(T0, N, SR)
    clock.observe(T0 + 10 * MS, N, SR)
    d = clock.observe(T0 + stamp_ms * MS, N, SR)
    assert d.action is ClockAction.DROP and d.stream_sample == -1
    assert clock.observe(T0 + 20 * MS, N, SR).action is ClockAction.IN_ORDER  # the timeline did not move


def test_out_of_order_pair() -> None:
    clock = AudioStreamClock()
    clock.observe(T0, N, SR)
    assert clock.observe(T0 + 20 * MS, N, SR).action is ClockAction.GAP_FILL  # chunk 1 is late
    assert clock.observe(T0 + 10 * MS, N, SR).action is ClockAction.DROP  # it arrives: too late, dropped


def test_time_jump_back_and_rate_change_reset() -> None:
    clock = AudioStreamClock()
    clock.observe(T0, N, SR)
    assert clock.observe(T0 - 5_000 * MS, N, SR).action is ClockAction.RESET  # bag loop / clock reset
    assert clock.observe(T0 - 4_990 * MS, 480, 48000).action is ClockAction.RESET


def test_sample_index_mode_is_exact() -> None:
    clock = AudioStreamClock()
    assert clock.observe(T0, N, SR, sample_index=1000).action is ClockAction.IN_ORDER
    assert clock.observe(T0 + 99 * MS, N, SR, sample_index=1160).action is ClockAction.IN_ORDER  # stamps ignored
    d = clock.observe(0, N, SR, sample_index=1330)
    assert d.action is ClockAction.GAP_FILL and d.silence_samples == 10
    assert clock.observe(0, N, SR, sample_index=1400).action is ClockAction.DROP


def test_long_run_has_no_rounding_drift() -> None:
    clock = AudioStreamClock(ClockConfig(tolerance_s=0.0))
    sr, n = 44100, 441 * 3  # 30 ms chunks at 44.1 kHz: stamps are exact integers of ns only on average
    for k in range(3000):
        d = clock.observe(T0 + (k * n * 1_000_000_000) // sr, n, sr)
        assert d.action is ClockAction.IN_ORDER, k


def test_bad_arguments() -> None:
    with pytest.raises(InputError):
        ClockConfig(tolerance_s=-1.0)
    with pytest.raises(InputError):
        AudioStreamClock().observe(T0, 0, SR)
