"""Input guard around any :class:`StreamingVoiceAnonymizer`: format conversion, bad-input handling, fail-closed.

What the node hands in can be wrong in many ways; this is where each case is decided:

* sample format: int16/int32/uint8/float PCM, interleaved 1-D or (samples, channels) -> float32 in [-1, 1];
* channel count other than 1: downmixed (mean) or rejected, per :class:`ChannelPolicy`;
* sample rate other than the backend's: resampled by a stateful polyphase filter or rejected, per
  :class:`RatePolicy` (rejection raises :class:`FormatRejectedError`);
* NaN/inf: a fault: that chunk's output is silence, all state is reset;
* clipping (samples at full scale): counted and processed; the output never exceeds full scale;
* any backend exception: a fault: silence out, state reset. Raw audio is never passed through.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

from anon_ros.core.errors import InputError
from anon_ros.core.voice.base import FULL_SCALE, FloatArray, StreamingVoiceAnonymizer, VoiceBackend
from anon_ros.core.voice.mcadams import McAdamsAnonymizer, McAdamsConfig
from anon_ros.core.voice.onnx_backend import OnnxStreamSpec, OnnxVoiceConverter
from anon_ros.core.voice.resample import StreamingResampler

CLIP_LEVEL = 0.999
"""Input samples at or above this magnitude count as clipped."""


class FormatRejectedError(InputError):
    """A chunk's rate or channel count differs from the configured one and the policy is REJECT."""


class ChannelPolicy(enum.Enum):
    """What to do with multi-channel input."""

    DOWNMIX = 'downmix'
    REJECT = 'reject'


class RatePolicy(enum.Enum):
    """What to do with input at a sample rate other than the backend's."""

    RESAMPLE = 'resample'
    REJECT = 'reject'


class FaultKind(enum.Enum):
    """Why a chunk's output was replaced by silence."""

    NON_FINITE = 'non_finite'
    BACKEND_ERROR = 'backend_error'


@dataclass(frozen=True)
class VoiceFault:
    """One fault: kind and a human-readable detail."""

    kind: FaultKind
    detail: str


@dataclass(frozen=True)
class ChunkResult:
    """Anonymized audio at the backend rate (float32, |x| <= full scale), the fault if any, clipped input count."""

    audio: FloatArray
    fault: VoiceFault | None
    clipped_samples: int

    def __post_init__(self) -> None:
        if self.audio.ndim != 1 or self.audio.dtype != np.float32:
            msg = f'ChunkResult audio must be 1-D float32, got {self.audio.shape} {self.audio.dtype}'
            raise InputError(msg)
        if self.audio.size and float(np.max(np.abs(self.audio))) > FULL_SCALE:
            msg = 'ChunkResult audio exceeds full scale'
            raise InputError(msg)


def pcm_to_float(samples: np.ndarray, channels: int) -> np.ndarray:
    """PCM (1-D interleaved or 2-D samples x channels) -> float (samples, channels); raises InputError."""
    if channels < 1:
        msg = f'channels must be >= 1, got {channels}'
        raise InputError(msg)
    if not isinstance(samples, np.ndarray):
        msg = f'samples must be a numpy array, got {type(samples).__name__}'
        raise InputError(msg)
    if samples.dtype == np.int16:
        f = samples.astype(np.float32) / 32768.0
    elif samples.dtype == np.int32:
        f = (samples.astype(np.float64) / 2147483648.0).astype(np.float32)
    elif samples.dtype == np.uint8:
        f = (samples.astype(np.float32) - 128.0) / 128.0
    elif samples.dtype in (np.float32, np.float64):
        f = samples.astype(np.float32)
    else:
        msg = f'samples must be int16, int32, uint8, float32 or float64 PCM, got {samples.dtype}'
        raise InputError(msg)
    if f.ndim == 1:
        if f.size % channels:
            msg = f'{f.size} interleaved samples do not divide into {channels} channels'
            raise InputError(msg)
        return f.reshape(-1, channels)
    if f.ndim == 2 and f.shape[1] == channels:
        return f
    msg = f'samples must be 1-D interleaved or (n, {channels}), got shape {samples.shape}'
    raise InputError(msg)


class GuardedVoiceStream:
    """Wraps a backend; :meth:`process` takes raw PCM as it came and never raises for bad audio content."""

    def __init__(self, backend: StreamingVoiceAnonymizer, channel_policy: ChannelPolicy = ChannelPolicy.DOWNMIX,
                 rate_policy: RatePolicy = RatePolicy.RESAMPLE) -> None:
        self._backend = backend
        self._channels = channel_policy
        self._rates = rate_policy
        self._resampler: StreamingResampler | None = None

    @property
    def backend(self) -> StreamingVoiceAnonymizer:
        """The wrapped anonymizer."""
        return self._backend

    @property
    def sample_rate(self) -> int:
        """Output sample rate (the backend's)."""
        return self._backend.sample_rate

    def reset(self) -> None:
        """Reset the backend and the resampler."""
        self._backend.reset()
        if self._resampler is not None:
            self._resampler.reset()

    def _to_mono(self, f: np.ndarray) -> np.ndarray:
        if f.shape[1] == 1:
            return f[:, 0]
        if self._channels is ChannelPolicy.DOWNMIX:
            mixed: np.ndarray = f.mean(axis=1, dtype=np.float64).astype(np.float32)
            return mixed
        if self._channels is ChannelPolicy.REJECT:
            msg = f'expected mono audio, got {f.shape[1]} channels (channel policy reject)'
            raise FormatRejectedError(msg)
        msg = f'unknown channel policy {self._channels!r}'
        raise AssertionError(msg)

    def _to_rate(self, x: FloatArray, rate: int) -> FloatArray:
        target = self._backend.sample_rate
        if rate == target:
            return x
        if self._rates is RatePolicy.REJECT:
            msg = f'expected {target} Hz audio, got {rate} Hz (rate policy reject)'
            raise FormatRejectedError(msg)
        if self._rates is RatePolicy.RESAMPLE:
            if self._resampler is None or self._resampler.rate_in != rate:
                self._resampler = StreamingResampler(rate, target)
            return self._resampler.process(x)
        msg = f'unknown rate policy {self._rates!r}'
        raise AssertionError(msg)

    def _expected_out(self, n_in: int, rate: int) -> int:
        return n_in if rate == self._backend.sample_rate else int(round(n_in * self._backend.sample_rate / rate))

    def process(self, samples: np.ndarray, sample_rate: int, channels: int = 1) -> ChunkResult:
        """Anonymize one chunk; format errors raise (InputError/FormatRejectedError), content faults give silence."""
        if sample_rate < 1:
            msg = f'sample_rate must be >= 1, got {sample_rate}'
            raise InputError(msg)
        mono = self._to_mono(pcm_to_float(samples, channels))
        if self._rates is RatePolicy.REJECT and sample_rate != self._backend.sample_rate:
            self._to_rate(mono, sample_rate)  # raises FormatRejectedError
        if not np.all(np.isfinite(mono)):
            bad = int(np.count_nonzero(~np.isfinite(mono)))
            self.reset()
            n = self._expected_out(mono.size, sample_rate)
            return ChunkResult(np.zeros(n, dtype=np.float32),
                               VoiceFault(FaultKind.NON_FINITE, f'{bad} NaN/inf samples: silence, state reset'), 0)
        clipped = int(np.count_nonzero(np.abs(mono) >= CLIP_LEVEL))
        mono = np.clip(mono, -FULL_SCALE, FULL_SCALE)
        try:
            x = self._to_rate(mono, sample_rate)
            y = self._backend.process(x)
            if y.shape != x.shape or not np.all(np.isfinite(y)):
                msg = f'backend returned shape {y.shape} (expected {x.shape}) or non-finite samples'
                raise AssertionError(msg)
        except Exception as err:  # noqa: BLE001 - fail closed on anything the backend does
            self.reset()
            n = self._expected_out(mono.size, sample_rate)
            return ChunkResult(np.zeros(n, dtype=np.float32),
                               VoiceFault(FaultKind.BACKEND_ERROR, f'{type(err).__name__}: {err}'), clipped)
        y = np.clip(y.astype(np.float32, copy=False), -FULL_SCALE, FULL_SCALE)
        return ChunkResult(y, None, clipped)

    def silence(self, n_samples: int) -> ChunkResult:
        """Feed ``n_samples`` zeros at the backend rate (a gap the stream clock asked to fill)."""
        if n_samples < 0:
            msg = f'n_samples must be >= 0, got {n_samples}'
            raise InputError(msg)
        return self.process(np.zeros(n_samples, dtype=np.float32), self._backend.sample_rate)

    def flush(self) -> FloatArray:
        """The backend's held-back samples; then everything is reset."""
        try:
            tail = np.clip(self._backend.flush(), -FULL_SCALE, FULL_SCALE).astype(np.float32)
        except Exception:  # noqa: BLE001 - fail closed: the tail becomes silence
            tail = np.zeros(self._backend.latency_samples, dtype=np.float32)
        self.reset()
        return tail


def make_backend(kind: VoiceBackend, *, mcadams: McAdamsConfig | None = None,
                 onnx: OnnxStreamSpec | None = None) -> StreamingVoiceAnonymizer:
    """Build the backend a node parameter selects; every run of McAdams draws a fresh random strength."""
    if kind is VoiceBackend.MCADAMS:
        return McAdamsAnonymizer(mcadams if mcadams is not None else McAdamsConfig())
    if kind is VoiceBackend.ONNX:
        if onnx is None:
            msg = 'the onnx voice backend needs an OnnxStreamSpec (model path, chunk, state tensor names)'
            raise InputError(msg)
        return OnnxVoiceConverter(onnx)
    msg = f'unknown voice backend {kind!r}'
    raise AssertionError(msg)
