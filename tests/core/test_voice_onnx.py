"""ONNX streaming backend with a model the test builds: gain + one-pole filter whose state is a tensor."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import scipy.signal
from onnx import TensorProto, helper

from anon_ros.core.errors import ModelError
from anon_ros.core.voice import (
    GuardedVoiceStream,
    OnnxStreamSpec,
    OnnxVoiceConverter,
    StreamingVoiceAnonymizer,
    VoiceBackend,
    make_backend,
)
from tests.core.speech_data import speech

GAIN = 0.5
POLE = 0.9


def one_pole_model(path: Path, chunk: int, gain: float = GAIN, pole: float = POLE) -> Path:
    """y = gain * f, f[n] = x[n] + pole * f[n-1], as one MatMul per chunk; state = f[-1] in and out."""
    i = np.arange(chunk)
    m = np.where(i[:, None] >= i[None, :], pole ** (i[:, None] - i[None, :]).clip(0), 0.0)  # f = m @ x
    v = pole ** (i + 1.0)  # contribution of the previous chunk's last f
    inits = [
        helper.make_tensor('mt', TensorProto.FLOAT, [chunk, chunk], m.T.astype(np.float32).ravel()),
        helper.make_tensor('v', TensorProto.FLOAT, [1, chunk], v.astype(np.float32).ravel()),
        helper.make_tensor('g', TensorProto.FLOAT, [], [gain]),
        helper.make_tensor('s0', TensorProto.INT64, [1], [chunk - 1]),
        helper.make_tensor('s1', TensorProto.INT64, [1], [chunk]),
        helper.make_tensor('ax', TensorProto.INT64, [1], [1]),
    ]
    nodes = [
        helper.make_node('MatMul', ['audio_in', 'mt'], ['fx']),
        helper.make_node('MatMul', ['state_in', 'v'], ['fs']),
        helper.make_node('Add', ['fx', 'fs'], ['f']),
        helper.make_node('Mul', ['f', 'g'], ['audio_out']),
        helper.make_node('Slice', ['f', 's0', 's1', 'ax'], ['state_out']),
    ]
    graph = helper.make_graph(
        nodes, 'one_pole',
        [helper.make_tensor_value_info('audio_in', TensorProto.FLOAT, [1, chunk]),
         helper.make_tensor_value_info('state_in', TensorProto.FLOAT, [1, 1])],
        [helper.make_tensor_value_info('audio_out', TensorProto.FLOAT, [1, chunk]),
         helper.make_tensor_value_info('state_out', TensorProto.FLOAT, [1, 1])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def spec(path: Path, chunk: int, **kw: object) -> OnnxStreamSpec:
    return OnnxStreamSpec(model_path=path, sample_rate=16000, chunk_samples=chunk,
                          state_pairs=(('state_in', 'state_out'),), **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize('model_chunk', [160, 257])
@pytest.mark.parametrize('feed', [1, 7, 160, 333, 1024])
def test_state_carries_over(tmp_path: Path, model_chunk: int, feed: int) -> None:
    x = speech(1, seconds=0.8)
    conv = OnnxVoiceConverter(spec(one_pole_model(tmp_path / 'm.onnx', model_chunk), model_chunk))
    assert isinstance(conv, StreamingVoiceAnonymizer)
    outs = [conv.process(x[i:i + feed]) for i in range(0, x.size, feed)]
    assert [o.size for o in outs] == [x[i:i + feed].size for i in range(0, x.size, feed)]
    y = np.concatenate([*outs, conv.flush()])
    lat = conv.latency_samples
    assert lat == model_chunk - 1
    assert y.size == x.size + lat
    ref = scipy.signal.lfilter([GAIN], [1.0, -POLE], x.astype(np.float64))
    np.testing.assert_allclose(y[lat:], ref, atol=2e-5)


def test_state_matters_and_reset_zeroes_it(tmp_path: Path) -> None:
    x = speech(1, seconds=0.3)
    conv = OnnxVoiceConverter(spec(one_pole_model(tmp_path / 'm.onnx', 160), 160))
    a = np.concatenate([conv.process(x), conv.flush()])
    # Without carried state each chunk would restart the filter: the result differs at every chunk start.
    naive = np.concatenate([scipy.signal.lfilter([GAIN], [1, -POLE], x[i:i + 160]) for i in range(0, x.size, 160)])
    assert np.max(np.abs(a[159:159 + naive.size] - naive)) > 1e-3
    b = np.concatenate([conv.process(x), conv.flush()])  # flush reset the state: same again
    np.testing.assert_array_equal(a, b)


def test_model_latency_is_reported(tmp_path: Path) -> None:
    conv = OnnxVoiceConverter(spec(one_pole_model(tmp_path / 'm.onnx', 160), 160, model_latency_samples=80))
    assert conv.latency_samples == 159 + 80
    assert conv.flush().size == 239


def test_backend_enum_builds_onnx(tmp_path: Path) -> None:
    backend = make_backend(VoiceBackend.parse('ONNX'), onnx=spec(one_pole_model(tmp_path / 'm.onnx', 160), 160))
    assert isinstance(backend, OnnxVoiceConverter)


@pytest.mark.parametrize('kw, match', [
    ({'audio_input': 'nope'}, 'lacks tensors'),
    ({'state_pairs': ()}, 'does not feed'),
])
def test_bad_spec_rejected(tmp_path: Path, kw: dict[str, object], match: str) -> None:
    path = one_pole_model(tmp_path / 'm.onnx', 160)
    args = {'model_path': path, 'sample_rate': 16000, 'chunk_samples': 160,
            'state_pairs': (('state_in', 'state_out'),)} | kw
    with pytest.raises(ModelError, match=match):
        OnnxVoiceConverter(OnnxStreamSpec(**args))  # type: ignore[arg-type]


def test_wrong_chunk_and_missing_file(tmp_path: Path) -> None:
    path = one_pole_model(tmp_path / 'm.onnx', 160)
    with pytest.raises(ModelError, match='chunk_samples=320'):
        OnnxVoiceConverter(spec(path, 320))
    with pytest.raises(ModelError, match='not found'):
        OnnxVoiceConverter(spec(tmp_path / 'missing.onnx', 160))


def test_nan_from_model_fails_closed(tmp_path: Path) -> None:
    """A model producing inf (gain inf) is a backend fault: the guard outputs silence, never raw audio."""
    path = one_pole_model(tmp_path / 'm.onnx', 160, gain=float('inf'))
    guard = GuardedVoiceStream(OnnxVoiceConverter(spec(path, 160)))
    x = speech(1, seconds=0.1)
    res = guard.process(x, 16000)
    assert res.fault is not None and res.fault.kind.value == 'backend_error'
    assert res.audio.size == x.size and not np.any(res.audio)
