"""McAdams streaming anonymizer on recorded speech: streaming == offline, level, limiter, silence, randomness."""

from __future__ import annotations

import numpy as np
import pytest

from anon_ros.core.errors import InputError
from anon_ros.core.voice import (
    LimiterConfig,
    McAdamsAnonymizer,
    McAdamsConfig,
    PeakLimiter,
    StreamingVoiceAnonymizer,
    Strength,
    VoiceParams,
    anonymize_offline,
)
from anon_ros.core.voice.mcadams import _FrameWarper, resonance_eq
from tests.core.speech_data import speech

PARAMS = [
    VoiceParams(alpha=0.8),
    VoiceParams(alpha=0.55, vtl=1.15, pitch=1.25),  # pitch > 1 adds look-ahead
    VoiceParams(alpha=0.95, vtl=0.85, pitch=0.8),
    VoiceParams(alpha=0.95, eq=((300.0, 30.0), (1400.0, 20.0), (5000.0, 25.0))),  # the resonant preset's EQ
]


def stream(anon: McAdamsAnonymizer, x: np.ndarray, chunk: int) -> np.ndarray:
    outs = [anon.process(x[i:i + chunk]) for i in range(0, x.size, chunk)]
    for o, i in zip(outs, range(0, x.size, chunk), strict=True):
        assert o.size == x[i:i + chunk].size  # chunk in, chunk out
    outs.append(anon.flush())
    return np.concatenate(outs)


@pytest.mark.parametrize('params', PARAMS, ids=lambda p: f'a{p.alpha}-v{p.vtl}-p{p.pitch}')
@pytest.mark.parametrize('chunk', [7, 160, 161, 320, 441, 1000])
def test_streaming_equals_offline(params: VoiceParams, chunk: int) -> None:
    x = speech(1, seconds=1.5)
    cfg = McAdamsConfig()
    ref = anonymize_offline(x, cfg, params)
    anon = McAdamsAnonymizer(cfg, params)
    y = stream(anon, x, chunk)
    lat = anon.latency_samples
    assert y.size == x.size + lat
    assert not np.any(y[:lat])  # the delay is silence
    np.testing.assert_allclose(y[lat:], ref, atol=1e-6, rtol=0)


def test_reset_restarts_identically() -> None:
    x = speech(1, seconds=0.6)
    anon = McAdamsAnonymizer(McAdamsConfig(), VoiceParams(alpha=0.7))
    first = stream(anon, x, 160)
    anon.process(np.ones(77, dtype=np.float32) * 0.3)
    anon.reset()
    np.testing.assert_array_equal(stream(anon, x, 160), first)


def test_protocol_and_latency() -> None:
    anon = McAdamsAnonymizer(McAdamsConfig(), VoiceParams(alpha=0.8))
    assert isinstance(anon, StreamingVoiceAnonymizer)
    assert anon.sample_rate == 16000
    assert anon.chunk_samples == 160
    assert anon.latency_samples == 319  # 20 ms frame - 1: 19.9 ms
    assert McAdamsAnonymizer(McAdamsConfig(), VoiceParams(alpha=0.8, pitch=1.25)).latency_samples == 319 + 40


@pytest.mark.parametrize('alpha', [0.5, 0.7, 0.9])
def test_level_follows_input(alpha: float) -> None:
    """Pole warping alone raises the level up to x85 at alpha 0.5; the frame gain keeps it at the input's."""
    x = speech(0)
    y = anonymize_offline(x, McAdamsConfig(), VoiceParams(alpha=alpha))
    ratio = float(np.sqrt(np.mean(y.astype(np.float64) ** 2) / np.mean(x.astype(np.float64) ** 2)))
    assert 0.7 < ratio < 1.3
    assert np.max(np.abs(y)) <= 0.98


@pytest.mark.parametrize('params', PARAMS, ids=lambda p: f'a{p.alpha}')
def test_clipped_input_never_exceeds_full_scale(params: VoiceParams) -> None:
    x = np.clip(speech(1) * 20.0, -1.0, 1.0).astype(np.float32)  # heavily clipped speech
    anon = McAdamsAnonymizer(McAdamsConfig(), params)
    y = stream(anon, x, 160)
    assert np.max(np.abs(y)) <= 0.98 + 1e-7
    assert np.sqrt(np.mean(y ** 2)) > 0.1  # limited, not muted


@pytest.mark.parametrize('params', [VoiceParams(alpha=0.6, pitch=1.2), PARAMS[-1]], ids=['pitch', 'eq'])
def test_digital_silence_passes_through(params: VoiceParams) -> None:
    sr = 16000
    s = speech(1, seconds=1.0)
    x = np.concatenate((np.zeros(sr // 2, np.float32), s, np.zeros(sr, np.float32), s[:sr // 4]))
    anon = McAdamsAnonymizer(McAdamsConfig(), params)
    y = stream(anon, x, 160)[anon.latency_samples:]
    assert not np.any(y[:sr // 2 - 320])  # leading silence stays exact zeros
    margin = 400 + (256 if params.eq else 0)  # a frame + look-ahead (+ the 16 ms EQ tail) away from speech
    gap = slice(sr // 2 + s.size + margin, sr // 2 + s.size + sr - 400)
    assert not np.any(y[gap])
    assert np.any(y[sr // 2:sr // 2 + s.size])


def test_poles_stay_inside_unit_circle() -> None:
    x = speech(0)
    cfg = McAdamsConfig()
    fw = _FrameWarper(cfg, VoiceParams(alpha=0.5, vtl=1.3))
    worst = 0.0
    for start in range(0, x.size - 320, 1600):
        xw = x[start:start + 320].astype(np.float64) * fw.win
        r = np.correlate(xw, xw, 'full')[319:340]
        if r[0] <= 0:
            continue
        from scipy.linalg import solve_toeplitz

        a = np.concatenate(([1.0], solve_toeplitz(r[:-1], -r[1:])))
        worst = max(worst, float(np.max(np.abs(np.roots(fw.warp_poles(a))))))
    assert 0.5 < worst <= cfg.max_pole_radius + 1e-9


def test_strength_is_random_per_run() -> None:
    cfg = McAdamsConfig(vtl_range=(1.1, 1.2), vtl_random_direction=True, pitch_range=(1.05, 1.25),
                        pitch_random_direction=True)
    draws = {McAdamsAnonymizer(cfg).params for _ in range(40)}
    assert len(draws) == 40
    for p in draws:
        assert cfg.alpha_range[0] <= p.alpha <= cfg.alpha_range[1]
        # At least the minimum change, in either direction.
        assert 1.1 - 1e-9 <= max(p.vtl, 1 / p.vtl) <= 1.2 + 1e-9
        assert 1.05 - 1e-9 <= max(p.pitch, 1 / p.pitch) <= 1.25 + 1e-9
    assert {p.vtl > 1 for p in draws} == {True, False}
    up = McAdamsConfig(vtl_range=(1.05, 1.2))
    assert all(1.05 <= McAdamsAnonymizer(up).params.vtl <= 1.2 for _ in range(10))
    seeded = [McAdamsAnonymizer(cfg, rng=np.random.default_rng(3)).params for _ in range(2)]
    assert seeded[0] == seeded[1]


@pytest.mark.parametrize('kwargs', [
    {'alpha_range': (0.8, 0.8)},  # a fixed strength is refused
    {'alpha_range': (0.9, 0.5)},
    {'vtl_range': (0.9, 1.1), 'vtl_random_direction': True},  # sizes of the change: >= 1
    {'vtl_range': (0.5, 1.1)},
    {'pitch_range': (1.0, 3.0)},
    {'hop_ms': 15.0},
    {'lpc_order': 1},
    {'max_pole_radius': 1.0},
    {'eq_peaks': 3, 'eq_gain_db_range': (20.0, 20.0)},  # a fixed EQ is undone like a fixed alpha
    {'eq_peaks': 3, 'eq_band_hz': (200.0, 9000.0)},  # above Nyquist
    {'eq_peaks': 9},
])
def test_config_rejects(kwargs: dict[str, object]) -> None:
    with pytest.raises(InputError):
        McAdamsConfig(**kwargs)  # type: ignore[arg-type]


def test_non_float_chunk_rejected() -> None:
    anon = McAdamsAnonymizer()
    with pytest.raises(InputError, match='float'):
        anon.process(np.zeros(160, dtype=np.int16))
    with pytest.raises(InputError, match='1-D'):
        anon.process(np.zeros((160, 2), dtype=np.float32))


def test_limiter_chunked_equals_whole() -> None:
    x = (np.sin(np.arange(8000) * 0.05) * np.linspace(0.2, 3.0, 8000)).astype(np.float32)
    whole = PeakLimiter(LimiterConfig(ceiling=0.9), 16000).process(x)
    lim = PeakLimiter(LimiterConfig(ceiling=0.9), 16000)
    parts = np.concatenate([lim.process(x[i:i + 97]) for i in range(0, x.size, 97)])
    np.testing.assert_array_equal(parts, whole)
    assert np.max(np.abs(whole)) <= 0.9 + 1e-6


def test_presets_and_latency_budget() -> None:
    assert McAdamsConfig.preset(Strength.parse('Strong')) == McAdamsConfig()  # privacy first by default
    strong = McAdamsAnonymizer(McAdamsConfig.preset(Strength.STRONG))
    assert strong.params.vtl >= 1.2
    assert McAdamsAnonymizer(McAdamsConfig.preset(Strength.BALANCED)).params.vtl <= 1.14
    with pytest.raises(InputError, match='strong, balanced, mcadams, resonant'):
        Strength.parse('off')
    for s in Strength:
        anon = McAdamsAnonymizer(McAdamsConfig.preset(s))
        # Algorithmic latency incl. one 10 ms chunk of buffering: <= 30 ms.
        assert (anon.latency_samples + anon.chunk_samples) / anon.sample_rate <= 0.030


@pytest.mark.parametrize('vtl', [0.8, 1.0, 1.15, 1.32])
def test_vtl_warp_is_monotone_without_pile_up(vtl: float) -> None:
    fw = _FrameWarper(McAdamsConfig(), VoiceParams(alpha=1.0, vtl=vtl))
    phi = np.linspace(1e-3, np.pi * 0.99, 500)
    out = fw.vtl_warp(phi)
    assert np.all(np.diff(out) > 0)  # distinct formants stay distinct (no stack at Nyquist)
    assert out[-1] < np.pi
    np.testing.assert_allclose(out[phi < 0.6], vtl * phi[phi < 0.6])  # speech band: plain scaling


def test_resonant_eq_is_drawn_per_run_and_keeps_level() -> None:
    cfg = McAdamsConfig.preset(Strength.RESONANT)
    draws = [McAdamsAnonymizer(cfg).params for _ in range(20)]
    assert len({p.eq for p in draws}) == 20
    for p in draws:
        assert len(p.eq) == 3
        assert all(200.0 <= hz <= 6000.0 and 15.0 <= db <= 30.0 for hz, db in p.eq)
    # The other presets draw exactly as before (the EQ is drawn last, only when enabled).
    strong = VoiceParams.draw(McAdamsConfig(), np.random.default_rng(5))
    assert strong.eq == ()
    x = speech(0)
    for p in draws[:5]:
        y = anonymize_offline(x, cfg, p)
        ratio = float(np.sqrt(np.mean(y.astype(np.float64) ** 2) / np.mean(x.astype(np.float64) ** 2)))
        assert 0.3 < ratio < 3.0  # boosts of up to +30 dB, normalized for a speech-like spectrum


def test_resonant_eq_shape() -> None:
    cfg = McAdamsConfig.preset(Strength.RESONANT)
    h = resonance_eq(cfg, VoiceParams(alpha=1.0, eq=((1000.0, 30.0),)))
    assert h is not None and h.size == 256  # 16 ms, causal: no added algorithmic latency
    mag = 20 * np.log10(np.abs(np.fft.rfft(h, 4096)))
    f = np.fft.rfftfreq(4096, 1 / 16000)
    assert abs(f[int(np.argmax(mag))] - 1000.0) < 60.0
    assert 27.0 < mag.max() - mag[f > 6000].mean() < 33.0
    assert resonance_eq(cfg, VoiceParams(alpha=1.0)) is None
