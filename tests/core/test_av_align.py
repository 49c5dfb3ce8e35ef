"""A/V alignment on synthetic stamps: audio held back by the measured video delay, by sample count."""

from __future__ import annotations

import numpy as np
import pytest

from anon_ros.core.av_align import AlignConfig, AudioChunk, AvAligner, DelayEstimator
from anon_ros.core.errors import InputError

FS = 48_000
CHUNK = 960  # 20 ms
MS = 1_000_000


def chunk(i: int, samples: np.ndarray | None = None, t0_ns: int = 5_000 * MS) -> AudioChunk:
    if samples is None:
        samples = np.full((CHUNK, 1), 0.5, np.float32)
    return AudioChunk(samples, t0_ns + i * CHUNK * 1_000_000_000 // FS, FS)


@pytest.mark.parametrize(
    ('samples', 'match'),
    [
        (np.zeros((10,), np.float32), r'\(n >= 1, channels >= 1\)'),
        (np.zeros((0, 1), np.float32), r'\(n >= 1, channels >= 1\)'),
        (np.zeros((10, 1), np.float64), 'float32'),
    ],
)
def test_audio_chunk_validates(samples: np.ndarray, match: str) -> None:
    with pytest.raises(InputError, match=match):
        AudioChunk(samples, 0, FS)


def test_audio_chunk_duration_from_sample_count() -> None:
    c = AudioChunk(np.zeros((441, 2), np.float32), 7, 44_100)
    assert (c.frames, c.channels, c.duration_ns, c.end_ns) == (441, 2, 10 * MS, 10 * MS + 7)


def test_delay_estimator_is_a_robust_median() -> None:
    est = DelayEstimator(window=9)
    assert est.estimate_ns is None
    for i in range(9):
        est.observe(i * 33 * MS, i * 33 * MS + (500 * MS if i == 4 else 80 * MS))  # one 500 ms stall
    assert est.estimate_ns == 80 * MS
    for i in range(9, 14):  # the pipeline got slower: the median follows within half a window
        est.observe(i * 33 * MS, i * 33 * MS + 120 * MS)
    assert est.estimate_ns == 120 * MS
    with pytest.raises(InputError, match='different clocks'):
        est.observe(10, 5)


@pytest.mark.parametrize('field', ['sample_rate', 'channels', 'window'])
def test_config_rejects_bad_ints(field: str) -> None:
    with pytest.raises(InputError, match=field):
        AlignConfig(**{field: 0})


def test_config_rejects_bad_times() -> None:
    with pytest.raises(InputError, match='max_step_s'):
        AlignConfig(max_step_s=float('nan'))
    with pytest.raises(InputError, match='initial_delay_s'):
        AlignConfig(initial_delay_s=2.0, max_delay_s=1.0)


def test_without_video_audio_passes_through_bit_exact() -> None:
    al = AvAligner(AlignConfig(sample_rate=FS))
    rng = np.random.default_rng(0)
    for i in range(5):
        x = rng.standard_normal((CHUNK, 1)).astype(np.float32)
        out = al.push_audio(chunk(i, x))
        assert out is not None
        np.testing.assert_array_equal(out.samples, x)
        assert out.stamp_ns == chunk(i).stamp_ns


def test_delay_converges_to_video_minus_audio_delay() -> None:
    cfg = AlignConfig(sample_rate=FS, audio_output_latency_s=0.010)
    al = AvAligner(cfg)
    for i in range(200):
        c = chunk(i)
        if i % 2 == 0:  # a frame every 40 ms with a 120 ms anonymization delay
            al.observe_video(c.stamp_ns, c.stamp_ns + 120 * MS)
        out = al.push_audio(c, done_ns=c.end_ns + 5 * MS)  # audio path: 20 ms chunk + 5 ms
        assert out is not None
        assert out.frames == CHUNK
        # Output stamps tell the capture time of what plays: the input stamp minus the delay line.
        assert abs((c.stamp_ns - out.stamp_ns) - al.delay_ns) <= cfg.max_step_s * 1e9 + 1
    expected = 120 * MS - 25 * MS - 10 * MS
    assert al.target_delay_ns == pytest.approx(expected, abs=MS)
    assert abs(al.delay_ns - expected) <= cfg.deadband_s * 1e9 + 1
    assert al.skipped_samples == 0


def test_delayed_output_is_the_input_shifted() -> None:
    """An impulse captured at t comes out where the output stamps say content t plays."""
    al = AvAligner(AlignConfig(sample_rate=FS, initial_delay_s=0.05))
    outs = []
    impulse_chunk, impulse_at = 3, 100
    for i in range(10):
        x = np.zeros((CHUNK, 1), np.float32)
        if i == impulse_chunk:
            x[impulse_at] = 1.0
        out = al.push_audio(chunk(i, x))
        assert out is not None
        outs.append(out)
    stream = np.concatenate([o.samples[:, 0] for o in outs])
    pos = int(np.argmax(stream))
    assert stream[pos] == 1.0
    t_impulse = chunk(impulse_chunk).stamp_ns + impulse_at * 1_000_000_000 // FS
    o = outs[pos // CHUNK]
    assert o.stamp_ns + (pos % CHUNK) * 1_000_000_000 // FS == pytest.approx(t_impulse, abs=30_000)
    assert pos - (impulse_chunk * CHUNK + impulse_at) == int(0.05 * FS)


def test_delay_changes_only_insert_silence_or_skip_never_repeat() -> None:
    """Samples numbered 1, 2, 3...: a repeat would show as a number coming back."""
    al = AvAligner(AlignConfig(sample_rate=FS, max_step_s=0.004))
    seen: list[np.ndarray] = []
    for i in range(60):
        c = chunk(i, (np.arange(CHUNK, dtype=np.float32)[:, None] + i * CHUNK + 1))
        if i == 5:
            al.observe_video(c.stamp_ns, c.stamp_ns + 200 * MS)
        if i == 40:
            for _ in range(30):
                al.observe_video(c.stamp_ns, c.stamp_ns + 50 * MS)
        out = al.push_audio(c)
        assert out is not None
        seen.append(out.samples[:, 0])
    vals = np.concatenate(seen)
    assert al.inserted_samples > 0 and al.skipped_samples > 0
    assert np.all(vals >= 0) and vals.max() <= 60 * CHUNK
    # Unfaded samples are those in runs of consecutive numbers; faded ones are scaled and stand alone.
    step_up = np.diff(vals) == 1
    in_run = np.concatenate([step_up, [False]]) | np.concatenate([[False], step_up])
    runs = vals[in_run]
    assert np.all(np.diff(runs) > 0), 'a sample was played twice or out of order'
    assert len(runs) > 0.6 * len(vals)  # the rest: faded splices and inserted silence during the two moves


def test_gap_becomes_silence_and_repeat_is_dropped() -> None:
    al = AvAligner(AlignConfig(sample_rate=FS))
    assert al.push_audio(chunk(0)) is not None
    out = al.push_audio(chunk(2))  # chunk 1 lost
    assert out is not None and out.frames == 2 * CHUNK
    assert np.all(out.samples[:CHUNK] == 0) and np.all(out.samples[CHUNK:] == 0.5)
    assert al.push_audio(chunk(2)) is None  # repeated chunk
    out = al.push_audio(chunk(3))
    assert out is not None and out.stamp_ns == chunk(3).stamp_ns


def test_wrong_format_is_refused() -> None:
    al = AvAligner(AlignConfig(sample_rate=FS, channels=2))
    with pytest.raises(InputError, match='2 channel'):
        al.push_audio(chunk(0))


def test_skew_with_jittery_video_stays_within_a_frame() -> None:
    """30 fps video anonymized in order in 70 +- 10 ms, 20 ms audio chunks: lip-sync error <= 33 ms (p95)."""
    rng = np.random.default_rng(1)
    al = AvAligner(AlignConfig(sample_rate=FS))
    frame_ns = 1_000_000_000 // 30
    played: list[tuple[int, int]] = []  # (play time of first sample, capture time of first sample)
    frames: list[tuple[int, int]] = []
    t0 = chunk(0).stamp_ns
    last_done = 0
    for i in range(500):
        c = chunk(i)
        while t0 + len(frames) * frame_ns <= c.end_ns:
            cap = t0 + len(frames) * frame_ns
            last_done = max(cap + int(rng.normal(70, 10) * MS), last_done)  # published in order
            al.observe_video(cap, last_done)
            frames.append((cap, last_done))
        out = al.push_audio(c, done_ns=c.end_ns + 3 * MS)
        assert out is not None
        played.append((c.end_ns + 3 * MS, out.stamp_ns))
    play_t = np.array([p for p, _ in played])
    cap_t = np.array([a for _, a in played])
    skews = []
    for cap, done in frames[60:-10]:  # after convergence: when does the audio captured with each frame play?
        j = np.searchsorted(cap_t, cap, side='right') - 1
        skews.append((play_t[j] + (cap - cap_t[j]) - done) / MS)
    skew = np.abs(np.asarray(skews))
    assert np.median(skew) <= 10.0
    assert np.percentile(skew, 95) <= 33.0
