"""Audio time by sample count (as aiortc does): a stream's clock is its start time plus samples / rate.

Stamps derived this way never jitter with callback scheduling, and gaps show up as jumps in the sample index.
"""

from __future__ import annotations

NS_PER_S = 1_000_000_000


def sample_time_ns(start_ns: int, sample_index: int, sample_rate: int) -> int:
    """Capture time of sample ``sample_index`` of a stream whose sample 0 was captured at ``start_ns``."""
    if sample_rate <= 0:
        msg = f'sample_rate must be positive, got {sample_rate}'
        raise ValueError(msg)
    # Integer arithmetic: float seconds would lose nanoseconds after a few hours of audio.
    return start_ns + (sample_index * NS_PER_S) // sample_rate


def samples_between(start_ns: int, stamp_ns: int, sample_rate: int) -> int:
    """Number of samples from ``start_ns`` to ``stamp_ns`` (rounded to the nearest sample)."""
    return round((stamp_ns - start_ns) * sample_rate / NS_PER_S)
