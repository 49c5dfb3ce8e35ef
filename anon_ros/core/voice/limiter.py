"""A streaming peak limiter: instant attack, exponential release, so the output never exceeds the ceiling.

Pole warping changes the level (x1.9 at McAdams alpha 0.8, x85 at 0.5), and an input clipped at full scale can
come back with higher peaks after re-synthesis. The backends match each frame's energy to the input; this limiter
is the last guard. Its state is one gain value, updated per sample in order, so chunked and whole-signal processing
give identical results.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from anon_ros.core.errors import InputError
from anon_ros.core.voice.base import FULL_SCALE, FloatArray


@dataclass(frozen=True)
class LimiterConfig:
    """Ceiling (linear, <= full scale) and release time constant in seconds."""

    ceiling: float = 0.98
    release_s: float = 0.05

    def __post_init__(self) -> None:
        if not 0.0 < self.ceiling <= FULL_SCALE:
            msg = f'limiter ceiling must be in (0, {FULL_SCALE}], got {self.ceiling}'
            raise InputError(msg)
        if not self.release_s > 0.0:
            msg = f'limiter release_s must be > 0, got {self.release_s}'
            raise InputError(msg)


class PeakLimiter:
    """Gain g[n] = min(ceiling/|x[n]|, g[n-1] + (1 - g[n-1]) * c): drops at once, recovers smoothly."""

    def __init__(self, config: LimiterConfig, sample_rate: int) -> None:
        self._config = config
        self._coef = 1.0 - math.exp(-1.0 / (config.release_s * sample_rate))
        self._gain = 1.0

    @property
    def gain(self) -> float:
        """The current gain (1.0 when not limiting)."""
        return self._gain

    def reset(self) -> None:
        """Back to unity gain."""
        self._gain = 1.0

    def process(self, x: FloatArray) -> FloatArray:
        """Limit ``x`` (any length); the common case (no peak, gain recovered) costs one vectorized max."""
        ceiling = self._config.ceiling
        if x.size == 0:
            return x
        if self._gain >= 1.0 and float(np.max(np.abs(x))) <= ceiling:
            return x
        mag = np.abs(x.astype(np.float64))
        with np.errstate(divide='ignore'):
            need = np.where(mag > ceiling, ceiling / np.maximum(mag, 1e-30), 1.0)
        gains = np.empty_like(mag)
        g = self._gain
        c = self._coef
        for i in range(mag.size):  # sequential by nature; only runs while limiting or recovering
            g = g + (1.0 - g) * c
            if g > 1.0 - 1e-7:
                g = 1.0
            if need[i] < g:
                g = float(need[i])
            gains[i] = g
        self._gain = g
        out = (x * gains).astype(np.float32)
        # Float rounding of x * (ceiling/|x|) can land one ulp above the ceiling; full scale is the hard bound.
        np.clip(out, -FULL_SCALE, FULL_SCALE, out=out)
        return out
