"""Input guard: formats, channels, rates (stateful resampling), NaN/inf and backend faults, clipping."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal

from anon_ros.core.errors import InputError
from anon_ros.core.voice import (
    ChannelPolicy,
    FaultKind,
    FormatRejectedError,
    GuardedVoiceStream,
    McAdamsAnonymizer,
    McAdamsConfig,
    RatePolicy,
    StreamingResampler,
    VoiceBackend,
    VoiceParams,
    make_backend,
    pcm_to_float,
)
from tests.core.speech_data import speech


def guard(**kw: object) -> GuardedVoiceStream:
    return GuardedVoiceStream(McAdamsAnonymizer(McAdamsConfig(), VoiceParams(alpha=0.8)), **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize('rate_in, rate_out', [(48000, 16000), (44100, 16000), (8000, 16000), (22050, 16000)])
@pytest.mark.parametrize('chunk', [1, 97, 441, 480])
def test_streaming_resampler_equals_resample_poly(rate_in: int, rate_out: int, chunk: int) -> None:
    x = scipy.signal.resample_poly(speech(1, seconds=0.25).astype(np.float64), rate_in, 16000)
    r = StreamingResampler(rate_in, rate_out)
    y = np.concatenate([*(r.process(x[i:i + chunk]) for i in range(0, x.size, chunk)), r.flush()])
    ref = scipy.signal.resample_poly(x, r.up, r.down)
    assert y.size == ref.size
    np.testing.assert_allclose(y, ref, atol=2e-6)


def test_int16_stereo_downmixed() -> None:
    x = speech(1, seconds=0.5)
    pcm = np.round(np.stack([x, x], axis=1) * 32767).astype(np.int16)
    g = guard()
    res = g.process(pcm.ravel(), 16000, channels=2)  # interleaved
    ref = guard().process(x, 16000)
    assert res.fault is None
    np.testing.assert_allclose(res.audio, ref.audio, atol=1e-3)


def test_rejections_are_clear() -> None:
    x = speech(1, seconds=0.1)
    with pytest.raises(FormatRejectedError, match='expected mono audio, got 2 channels'):
        guard(channel_policy=ChannelPolicy.REJECT).process(np.stack([x, x], 1), 16000, channels=2)
    with pytest.raises(FormatRejectedError, match='expected 16000 Hz audio, got 48000 Hz'):
        guard(rate_policy=RatePolicy.REJECT).process(x, 48000)
    with pytest.raises(InputError, match='do not divide'):
        guard().process(np.zeros(161, np.float32), 16000, channels=2)
    with pytest.raises(InputError, match='int16, int32'):
        pcm_to_float(np.zeros(4, np.int64), 1)


def test_48k_input_resampled_continuously() -> None:
    x16 = speech(1, seconds=1.0)
    x48 = scipy.signal.resample_poly(x16, 3, 1).astype(np.float32)
    g = guard()
    outs = [g.process(x48[i:i + 480], 48000) for i in range(0, x48.size, 480)]
    assert all(o.fault is None for o in outs)
    total = sum(o.audio.size for o in outs)
    assert abs(total - x16.size) <= 20  # the resampler's look-ahead holds back a few samples


def test_nan_chunk_is_silence_and_resets() -> None:
    x = speech(1, seconds=0.5)
    g = guard()
    g.process(x[:4000], 16000)
    bad = x[4000:4160].copy()
    bad[10] = np.nan
    res = g.process(bad, 16000)
    assert res.fault is not None and res.fault.kind is FaultKind.NON_FINITE
    assert res.audio.size == 160 and not np.any(res.audio)
    # After the reset the stream behaves like a fresh one.
    np.testing.assert_array_equal(g.process(x[:1600], 16000).audio, guard().process(x[:1600], 16000).audio)
    inf = g.process(np.full(160, np.inf, np.float32), 16000)
    assert inf.fault is not None and not np.any(inf.audio)


def test_clipped_input_counted_output_bounded() -> None:
    x = np.clip(speech(1) * 30.0, -1.2, 1.2).astype(np.float32)  # float input even beyond full scale
    g = GuardedVoiceStream(McAdamsAnonymizer(McAdamsConfig(), VoiceParams(alpha=0.5)))
    results = [g.process(x[i:i + 160], 16000) for i in range(0, x.size, 160)]
    assert sum(r.clipped_samples for r in results) > 1000
    assert max(float(np.max(np.abs(r.audio))) for r in results) <= 1.0


def test_backend_exception_fails_closed() -> None:
    class Broken(McAdamsAnonymizer):
        def process(self, chunk: np.ndarray) -> np.ndarray:
            raise RuntimeError('boom')

    g = GuardedVoiceStream(Broken(McAdamsConfig(), VoiceParams(alpha=0.8)))
    x = speech(1, seconds=0.1)
    res = g.process(x, 16000)
    assert res.fault is not None and res.fault.kind is FaultKind.BACKEND_ERROR and 'boom' in res.fault.detail
    assert res.audio.size == x.size and not np.any(res.audio)


def test_gap_silence_and_flush_lengths() -> None:
    g = guard()
    assert g.silence(800).audio.size == 800
    assert g.flush().size == g.backend.latency_samples


def test_backend_enum() -> None:
    assert VoiceBackend.parse(' McAdams ') is VoiceBackend.MCADAMS
    with pytest.raises(InputError, match='mcadams, onnx'):
        VoiceBackend.parse('none')
    assert isinstance(make_backend(VoiceBackend.MCADAMS), McAdamsAnonymizer)
    with pytest.raises(InputError, match='OnnxStreamSpec'):
        make_backend(VoiceBackend.ONNX)
