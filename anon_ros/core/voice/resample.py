"""Stateful polyphase resampler: chunked output equals ``scipy.signal.resample_poly`` of the whole signal.

Per-chunk ``resample_poly`` would restart its filter at every chunk edge (clicks every 10 ms). This one keeps the
input history, uses resample_poly's own filter (Kaiser-windowed sinc, ``half_len = 10 * max(up, down)``) and emits
output sample k as soon as the input it needs has arrived (look-ahead ``ceil(half_len / up)`` input samples).
"""

from __future__ import annotations

from math import gcd

import numpy as np
import scipy.signal

from anon_ros.core.errors import InputError
from anon_ros.core.voice.base import FloatArray


class StreamingResampler:
    """Resample a stream from ``rate_in`` to ``rate_out`` Hz chunk by chunk."""

    def __init__(self, rate_in: int, rate_out: int) -> None:
        if rate_in <= 0 or rate_out <= 0:
            msg = f'sample rates must be positive, got {rate_in} -> {rate_out}'
            raise InputError(msg)
        g = gcd(rate_in, rate_out)
        self.up, self.down = rate_out // g, rate_in // g
        if max(self.up, self.down) > 1000:
            msg = f'resampling ratio {rate_in} -> {rate_out} Hz needs a {max(self.up, self.down)}-phase filter; refused'
            raise InputError(msg)
        self.rate_in, self.rate_out = rate_in, rate_out
        self.half_len = 10 * max(self.up, self.down)
        self._h = (scipy.signal.firwin(2 * self.half_len + 1, 1.0 / max(self.up, self.down),
                                       window=('kaiser', 5.0)) * self.up).astype(np.float64)
        self._taps = -(-(2 * self.half_len + 1) // self.up) + 1
        self.reset()

    @property
    def lookahead_in(self) -> int:
        """Input samples the resampler waits for beyond the one an output sample is centred on."""
        return -(-self.half_len // self.up)

    def reset(self) -> None:
        """Forget the history (the stream restarts)."""
        self._x = np.zeros(0, dtype=np.float64)
        self._x_start = 0  # input index of _x[0]
        self._n_in = 0
        self._k = 0  # next output index

    def _emit(self, k_end: int) -> FloatArray:
        up, down, hl = self.up, self.down, self.half_len
        k = np.arange(self._k, k_end, dtype=np.int64)
        if k.size == 0:
            return np.zeros(0, dtype=np.float32)
        i0 = -((hl - k * down) // up)  # ceil((k*down - hl) / up)
        i = i0[:, None] + np.arange(self._taps, dtype=np.int64)[None, :]
        hidx = hl + k[:, None] * down - i * up
        valid = (hidx >= 0) & (hidx <= 2 * hl) & (i >= 0) & (i < self._n_in)
        xi = np.clip(i - self._x_start, 0, max(self._x.size - 1, 0))
        xv = self._x[xi] if self._x.size else np.zeros(xi.shape)
        y = np.sum(np.where(valid, xv * self._h[np.clip(hidx, 0, 2 * hl)], 0.0), axis=1)
        self._k = k_end
        # Keep only the input the next output still needs.
        need_from = max(0, -((hl - self._k * down) // up))
        drop = need_from - self._x_start
        if drop > 0:
            self._x = self._x[drop:]
            self._x_start += drop
        out: FloatArray = y.astype(np.float32)
        return out

    def process(self, chunk: FloatArray) -> FloatArray:
        """Append ``chunk`` (1-D) and return every output sample whose input is complete."""
        if self.up == self.down == 1:
            return chunk
        self._x = np.concatenate((self._x, chunk.astype(np.float64)))
        self._n_in += chunk.size
        # Output k needs input up to floor((k*down + hl) / up) <= n_in - 1.
        k_end = (self._n_in * self.up - 1 - self.half_len) // self.down + 1
        return self._emit(max(k_end, self._k))

    def flush(self) -> FloatArray:
        """The outputs still pending, computed as resample_poly does (zeros after the end); then reset."""
        if self.up == self.down == 1:
            return np.zeros(0, dtype=np.float32)
        n_out = -(-self._n_in * self.up // self.down)
        tail = self._emit(max(n_out, self._k))
        self.reset()
        return tail
