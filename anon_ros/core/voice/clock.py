"""Audio stream clock: decides, per incoming chunk, whether it continues the stream, follows a gap, or is stale.

Time advances by sample count from the first stamp (never the wall clock); header stamps only detect gaps and
overlaps. A node calls :meth:`AudioStreamClock.observe` for every message before it feeds the anonymizer:

* ``IN_ORDER``: process the chunk.
* ``GAP_FILL``: process ``silence_samples`` zeros first (keeps the anonymizer's timeline), then the chunk.
* ``RESET``: the gap is too long, the rate changed or time jumped back: reset the anonymizer, then process.
* ``DROP``: the chunk overlaps audio already processed (duplicate, out of order): drop it.

Sample-clock drift against the stamps shows up as a small gap (filled) or overlap (dropped), so the timeline
re-aligns by itself.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from anon_ros.core.errors import InputError

_NS = 1_000_000_000


class ClockAction(enum.Enum):
    """What the caller does with the chunk."""

    IN_ORDER = 'in_order'
    GAP_FILL = 'gap_fill'
    RESET = 'reset'
    DROP = 'drop'


@dataclass(frozen=True)
class ClockConfig:
    """``tolerance_s``: stamp jitter accepted as in order; ``max_fill_s``: longest gap filled with silence;
    ``max_backwards_s``: a stamp this far before the expected one is a time reset (bag loop), not a stale chunk."""

    tolerance_s: float = 0.004
    max_fill_s: float = 0.5
    max_backwards_s: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.tolerance_s < 0.1:
            msg = f'tolerance_s must be in [0, 0.1) s, got {self.tolerance_s}'
            raise InputError(msg)
        if not self.max_fill_s >= self.tolerance_s:
            msg = f'max_fill_s must be >= tolerance_s ({self.tolerance_s}), got {self.max_fill_s}'
            raise InputError(msg)
        if not self.max_backwards_s > self.tolerance_s:
            msg = f'max_backwards_s must be > tolerance_s ({self.tolerance_s}), got {self.max_backwards_s}'
            raise InputError(msg)


@dataclass(frozen=True)
class ClockDecision:
    """The action, zeros to insert before the chunk (GAP_FILL only), the chunk's first sample on the stream's
    timeline (samples since the stream's origin; -1 when dropped), and why."""

    action: ClockAction
    silence_samples: int
    stream_sample: int
    reason: str

    def __post_init__(self) -> None:
        if self.silence_samples < 0:
            msg = f'silence_samples must be >= 0, got {self.silence_samples}'
            raise InputError(msg)
        if self.action is not ClockAction.GAP_FILL and self.silence_samples:
            msg = f'only GAP_FILL inserts silence, got {self.action} with {self.silence_samples} samples'
            raise InputError(msg)


class AudioStreamClock:
    """Tracks one audio stream; see the module docstring."""

    def __init__(self, config: ClockConfig | None = None) -> None:
        self._config = config if config is not None else ClockConfig()
        self.reset()

    def reset(self) -> None:
        """Forget the stream; the next chunk starts a new origin."""
        self._origin_ns: int | None = None
        self._origin_index = 0
        self._rate = 0
        self._samples = 0  # samples on the timeline since the origin
        self._use_index: bool | None = None

    def expected_stamp_ns(self) -> int | None:
        """Stamp the next in-order chunk should carry (None before the first chunk)."""
        if self._origin_ns is None:
            return None
        return self._origin_ns + self._samples * _NS // self._rate

    def _start(self, stamp_ns: int, sample_rate: int, sample_index: int | None) -> None:
        self._origin_ns = stamp_ns
        self._origin_index = sample_index if sample_index is not None else 0
        self._rate = sample_rate
        self._samples = 0
        self._use_index = sample_index is not None

    def observe(self, stamp_ns: int, n_samples: int, sample_rate: int,
                sample_index: int | None = None) -> ClockDecision:
        """Classify a chunk of ``n_samples`` starting at ``stamp_ns`` (or at ``sample_index`` if the source
        counts samples itself, which is exact and preferred)."""
        if n_samples < 1:
            msg = f'n_samples must be >= 1, got {n_samples}'
            raise InputError(msg)
        if sample_rate < 1:
            msg = f'sample_rate must be >= 1, got {sample_rate}'
            raise InputError(msg)
        if self._origin_ns is None or sample_rate != self._rate or (sample_index is not None) != self._use_index:
            first = self._origin_ns is None
            self._start(stamp_ns, sample_rate, sample_index)
            self._samples = n_samples
            if first:
                return ClockDecision(ClockAction.IN_ORDER, 0, 0, 'first chunk')
            return ClockDecision(ClockAction.RESET, 0, 0, f'sample rate or indexing changed (now {sample_rate} Hz)')
        cfg = self._config
        if sample_index is not None:
            dev = sample_index - (self._origin_index + self._samples)
        else:
            expected = self.expected_stamp_ns()
            assert expected is not None
            dev_ns = stamp_ns - expected
            dev = 0 if abs(dev_ns) <= cfg.tolerance_s * _NS else round(dev_ns * sample_rate / _NS)
        tol = int(cfg.tolerance_s * sample_rate) if sample_index is None else 0
        if abs(dev) <= tol:
            start = self._samples
            self._samples += n_samples
            return ClockDecision(ClockAction.IN_ORDER, 0, start, 'in order')
        if dev > 0:
            if dev <= cfg.max_fill_s * sample_rate:
                start = self._samples + dev
                self._samples = start + n_samples
                return ClockDecision(ClockAction.GAP_FILL, dev, start, f'gap of {dev} samples filled with silence')
            self._start(stamp_ns, sample_rate, sample_index)
            self._samples = n_samples
            return ClockDecision(ClockAction.RESET, 0, 0, f'gap of {dev} samples > max_fill_s: stream restarted')
        if -dev > cfg.max_backwards_s * sample_rate:
            self._start(stamp_ns, sample_rate, sample_index)
            self._samples = n_samples
            return ClockDecision(ClockAction.RESET, 0, 0, f'time went back {-dev} samples: stream restarted')
        return ClockDecision(ClockAction.DROP, 0, -1, f'chunk overlaps {-dev} samples already processed: dropped')
