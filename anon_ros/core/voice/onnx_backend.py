"""Pluggable ONNX voice-conversion backend with streaming state (as RAVAS runs Mimi-VC exported to ONNX).

The model takes one fixed-size chunk of audio plus state tensors and returns the converted chunk plus the next
state tensors. :class:`OnnxStreamSpec` names them; :class:`OnnxVoiceConverter` buffers any input chunking to the
model's chunk, carries the state from each call to the next, and keeps the stream contract of
:class:`~anon_ros.core.voice.base.StreamingVoiceAnonymizer` (delay ``chunk - 1 + model_latency`` samples).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from anon_ros.core.errors import InputError, ModelError
from anon_ros.core.voice.base import FULL_SCALE, FloatArray, VoiceError, check_mono_chunk


@dataclass(frozen=True)
class OnnxStreamSpec:
    """How to drive one streaming ONNX converter.

    ``state_pairs``: (input name, output name) per state tensor; the output of call k feeds the input of call
    k+1, zeros at the start and after :meth:`OnnxVoiceConverter.reset`. The audio input/output tensors have
    ``chunk_samples`` in their last axis and size-1 leading axes (e.g. [1, chunk] or [1, 1, chunk]).
    ``model_latency_samples``: delay the model itself adds (its look-ahead), reported in the latency.
    """

    model_path: Path
    sample_rate: int
    chunk_samples: int
    audio_input: str = 'audio_in'
    audio_output: str = 'audio_out'
    state_pairs: tuple[tuple[str, str], ...] = ()
    model_latency_samples: int = 0
    threads: int = 1

    def __post_init__(self) -> None:
        if not 8000 <= self.sample_rate <= 96000:
            msg = f'sample_rate must be in [8000, 96000] Hz, got {self.sample_rate}'
            raise InputError(msg)
        if self.chunk_samples < 1:
            msg = f'chunk_samples must be >= 1, got {self.chunk_samples}'
            raise InputError(msg)
        if self.model_latency_samples < 0:
            msg = f'model_latency_samples must be >= 0, got {self.model_latency_samples}'
            raise InputError(msg)
        if self.threads < 1:
            msg = f'threads must be >= 1, got {self.threads}'
            raise InputError(msg)
        names = [self.audio_input, self.audio_output] + [n for pair in self.state_pairs for n in pair]
        if len(set(names)) != len(names):
            msg = f'tensor names must be distinct, got {names}'
            raise InputError(msg)


def _static_shape(name: str, shape: list[Any], chunk: int | None) -> tuple[int, ...]:
    """Resolve a declared ONNX shape: symbolic batch-like dims become 1, a symbolic last audio dim the chunk."""
    out = []
    for i, d in enumerate(shape):
        if isinstance(d, int) and d >= 0:
            out.append(d)
        elif chunk is not None and i == len(shape) - 1:
            out.append(chunk)
        elif chunk is not None:
            out.append(1)
        else:
            msg = f'state tensor {name!r} must have a static shape, got {shape}'
            raise ModelError(msg)
    return tuple(out)


class OnnxVoiceConverter:
    """Runs a streaming ONNX converter on any chunking, carrying its state tensors."""

    def __init__(self, spec: OnnxStreamSpec) -> None:
        try:
            import onnxruntime as ort
        except ImportError as err:
            msg = f"the ONNX backend needs 'onnxruntime' ({err})"
            raise ModelError(msg) from err
        if not Path(spec.model_path).is_file():
            msg = f'ONNX voice model not found: {spec.model_path}'
            raise ModelError(msg)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = spec.threads
        opts.inter_op_num_threads = 1
        try:
            self._session = ort.InferenceSession(str(spec.model_path), sess_options=opts,
                                                 providers=['CPUExecutionProvider'])
        except Exception as err:  # noqa: BLE001 - ORT raises its own untyped errors
            msg = f'cannot load ONNX voice model {spec.model_path}: {err}'
            raise ModelError(msg) from err
        self._spec = spec
        inputs = {i.name: i for i in self._session.get_inputs()}
        outputs = {o.name: o for o in self._session.get_outputs()}
        want_in = [spec.audio_input] + [a for a, _ in spec.state_pairs]
        want_out = [spec.audio_output] + [b for _, b in spec.state_pairs]
        missing = [n for n in want_in if n not in inputs] + [n for n in want_out if n not in outputs]
        if missing:
            msg = (f'ONNX model {spec.model_path} lacks tensors {missing}; it has inputs {sorted(inputs)} '
                   f'and outputs {sorted(outputs)}')
            raise ModelError(msg)
        extra = sorted(set(inputs) - set(want_in))
        if extra:
            msg = f'ONNX model {spec.model_path} has inputs the spec does not feed: {extra}'
            raise ModelError(msg)
        for n in want_in:
            if inputs[n].type != 'tensor(float)':
                msg = f'ONNX input {n!r} must be float32, got {inputs[n].type}'
                raise ModelError(msg)
        self._audio_shape = _static_shape(spec.audio_input, list(inputs[spec.audio_input].shape), spec.chunk_samples)
        if self._audio_shape[-1] != spec.chunk_samples or math.prod(self._audio_shape) != spec.chunk_samples:
            msg = (f'ONNX audio input {spec.audio_input!r} must hold exactly chunk_samples={spec.chunk_samples} '
                   f'samples in its last axis, got shape {inputs[spec.audio_input].shape}')
            raise ModelError(msg)
        self._state_shapes = {a: _static_shape(a, list(inputs[a].shape), None) for a, _ in spec.state_pairs}
        self._out_names = want_out
        self.reset()

    @property
    def spec(self) -> OnnxStreamSpec:
        """The model description."""
        return self._spec

    @property
    def sample_rate(self) -> int:
        """Samples per second."""
        return self._spec.sample_rate

    @property
    def chunk_samples(self) -> int:
        """The model's chunk."""
        return self._spec.chunk_samples

    @property
    def latency_samples(self) -> int:
        """Buffering to the model chunk (chunk - 1) plus the model's own delay."""
        return self._spec.chunk_samples - 1 + self._spec.model_latency_samples

    def reset(self) -> None:
        """Zero state tensors, empty buffers."""
        self._state = {a: np.zeros(s, dtype=np.float32) for a, s in self._state_shapes.items()}
        self._in = np.zeros(0, dtype=np.float32)
        self._out = np.zeros(self._spec.chunk_samples - 1, dtype=np.float32)

    def _run(self, block: FloatArray) -> FloatArray:
        spec = self._spec
        feeds = {spec.audio_input: block.reshape(self._audio_shape)}
        feeds.update(self._state)
        try:
            results = self._session.run(self._out_names, feeds)
        except Exception as err:  # noqa: BLE001 - ORT raises its own untyped errors
            msg = f'ONNX voice model failed: {err}'
            raise VoiceError(msg) from err
        audio = np.asarray(results[0], dtype=np.float32).reshape(-1)
        if audio.size != spec.chunk_samples:
            msg = f'ONNX model returned {audio.size} audio samples for a {spec.chunk_samples}-sample chunk'
            raise VoiceError(msg)
        if not np.all(np.isfinite(audio)):
            msg = 'ONNX model returned non-finite audio'
            raise VoiceError(msg)
        for (a, _), value in zip(spec.state_pairs, results[1:], strict=True):
            value = np.asarray(value, dtype=np.float32)
            if value.shape != self._state_shapes[a]:
                msg = f'ONNX state {a!r} came back with shape {value.shape}, expected {self._state_shapes[a]}'
                raise VoiceError(msg)
            self._state[a] = value
        return np.clip(audio, -FULL_SCALE, FULL_SCALE)

    def process(self, chunk: FloatArray) -> FloatArray:
        """Consume ``chunk`` and return ``len(chunk)`` samples (delayed by ``latency_samples``)."""
        chunk = check_mono_chunk(chunk)
        c = self._spec.chunk_samples
        self._in = np.concatenate((self._in, chunk))
        blocks = []
        while self._in.size >= c:
            blocks.append(self._run(self._in[:c]))
            self._in = self._in[c:]
        if blocks:
            self._out = np.concatenate([self._out, *blocks])
        k = chunk.size
        out, self._out = self._out[:k], self._out[k:]
        return out

    def flush(self) -> FloatArray:
        """Return the held-back ``latency_samples`` (as if silence followed) and reset."""
        tail = self.process(np.zeros(self.latency_samples, dtype=np.float32))
        self.reset()
        return tail
