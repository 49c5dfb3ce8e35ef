"""The interface every streaming voice anonymizer implements, and the Enum the node selects a backend with.

Stream contract (all backends): mono float32 samples in [-1, 1] at ``sample_rate``. ``process`` accepts a chunk of
any length and returns exactly as many samples; the output stream is the anonymized input delayed by
``latency_samples`` (the first ``latency_samples`` outputs are silence). ``flush`` returns the last
``latency_samples`` samples and resets the signal state, so ``concat(process(...)..., flush())`` has
``len(input) + latency_samples`` samples. Time advances by sample count only.
"""

from __future__ import annotations

import enum
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from anon_ros.core.errors import AnonRosError, InputError

FloatArray = npt.NDArray[np.float32]

FULL_SCALE = 1.0
"""Output never exceeds this magnitude (float audio; int16 full scale maps to it)."""


class VoiceError(AnonRosError):
    """A voice backend failed while processing (the caller outputs silence and resets it)."""


@runtime_checkable
class StreamingVoiceAnonymizer(Protocol):
    """A chunk-in, chunk-out anonymizer with a fixed delay; see the module docstring for the contract."""

    @property
    def sample_rate(self) -> int:
        """Samples per second of input and output."""
        ...

    @property
    def chunk_samples(self) -> int:
        """Preferred chunk length (any length is accepted; this one adds no buffering beyond the latency)."""
        ...

    @property
    def latency_samples(self) -> int:
        """Fixed delay between input and output streams, in samples (algorithmic latency without chunking)."""
        ...

    def process(self, chunk: FloatArray) -> FloatArray:
        """Consume ``chunk`` (1-D float32) and return ``len(chunk)`` output samples."""
        ...

    def flush(self) -> FloatArray:
        """Return the ``latency_samples`` still held back and reset the signal state."""
        ...

    def reset(self) -> None:
        """Drop all signal state (after a gap or fault); the per-run anonymization parameters are kept."""
        ...


class VoiceBackend(enum.Enum):
    """Which anonymizer a node runs; selected by a string parameter, unknown names are rejected."""

    MCADAMS = 'mcadams'
    ONNX = 'onnx'

    @classmethod
    def parse(cls, name: str) -> VoiceBackend:
        """Map a parameter value to a backend; raise :class:`InputError` naming the allowed values."""
        try:
            return cls(name.strip().lower())
        except ValueError as err:
            allowed = ', '.join(b.value for b in cls)
            msg = f'voice backend must be one of {allowed}, got {name!r}'
            raise InputError(msg) from err


def check_mono_chunk(chunk: object, what: str = 'chunk') -> FloatArray:
    """Return ``chunk`` as a 1-D float32 array or raise :class:`InputError` saying what came."""
    if not isinstance(chunk, np.ndarray):
        msg = f'{what} must be a numpy array, got {type(chunk).__name__}'
        raise InputError(msg)
    if chunk.ndim != 1:
        msg = f'{what} must be 1-D mono samples, got shape {chunk.shape}'
        raise InputError(msg)
    if chunk.dtype != np.float32:
        if not np.issubdtype(chunk.dtype, np.floating):
            msg = f'{what} must be float samples in [-1, 1], got dtype {chunk.dtype}'
            raise InputError(msg)
        chunk = chunk.astype(np.float32)
    return chunk
