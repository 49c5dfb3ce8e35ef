"""Lip sync for calls: hold anonymized audio back by the measured video processing delay (as RAVAS does).

Video anonymization takes far longer than voice conversion (tens of ms per frame against a few ms per chunk), so
played audio would lead the displayed video. The video delay is estimated from frames' capture stamps and the
times their anonymized versions were published; audio passes through a delay line whose length tracks

    target = video_delay - audio_delay + video_output_latency - audio_output_latency

where ``audio_delay`` is likewise measured from chunks' capture stamps and the times they reached the aligner,
and the two output latencies are those of the sinks (e.g. ``VirtualMicrophone.latency_s``). Then audio content
captured at time t plays when the video frame captured at t is shown.

Time is never read from a clock here: capture stamps come from the sensors (header stamps, sample counts) and
"done" times are passed in by the caller, who reads them from the node's clock when publishing. The delay line
advances by sample count. Changes of delay are made in small steps at a splice with short fades (a few ms of
silence inserted, or a few ms of audio skipped), so no audio is ever repeated and nothing but the given
(already anonymized) audio or silence comes out.
"""

from __future__ import annotations

import math
import statistics
import threading
from collections import deque
from dataclasses import dataclass

import numpy as np

from anon_ros.core.errors import InputError

_NS = 1_000_000_000


@dataclass(frozen=True)
class AudioChunk:
    """Consecutive audio samples, ``(n, channels)`` float32, whose first sample was captured at ``stamp_ns``."""

    samples: np.ndarray
    stamp_ns: int
    sample_rate: int

    def __post_init__(self) -> None:
        s = self.samples
        if not isinstance(s, np.ndarray) or s.ndim != 2 or s.shape[0] < 1 or s.shape[1] < 1:
            got = getattr(s, 'shape', type(s).__name__)
            msg = f'AudioChunk.samples must be an (n >= 1, channels >= 1) array, got {got}'
            raise InputError(msg)
        if s.dtype != np.float32:
            msg = f'AudioChunk.samples must be float32, got {s.dtype}'
            raise InputError(msg)
        if isinstance(self.sample_rate, bool) or not isinstance(self.sample_rate, int) or self.sample_rate <= 0:
            msg = f'AudioChunk.sample_rate must be a positive int, got {self.sample_rate!r}'
            raise InputError(msg)
        if isinstance(self.stamp_ns, bool) or not isinstance(self.stamp_ns, int):
            msg = f'AudioChunk.stamp_ns must be an int (nanoseconds), got {type(self.stamp_ns).__name__}'
            raise InputError(msg)

    @property
    def frames(self) -> int:
        """Number of samples per channel."""
        return int(self.samples.shape[0])

    @property
    def channels(self) -> int:
        """Number of channels."""
        return int(self.samples.shape[1])

    @property
    def duration_ns(self) -> int:
        """Duration from the sample count (exact to the nanosecond)."""
        return self.frames * _NS // self.sample_rate

    @property
    def end_ns(self) -> int:
        """Capture time just after the last sample."""
        return self.stamp_ns + self.duration_ns


class DelayEstimator:
    """Robust pipeline delay: the median of the last ``window`` (done time - capture stamp) observations.

    A median over about a second of frames ignores single stalls and GC pauses yet follows a lasting change
    (a heavier model, a busier machine) within half a window.
    """

    def __init__(self, window: int = 30) -> None:
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            msg = f'window must be an int >= 1, got {window!r}'
            raise InputError(msg)
        self._delays: deque[int] = deque(maxlen=window)

    def observe(self, capture_ns: int, done_ns: int) -> None:
        """Record that something captured at ``capture_ns`` was output at ``done_ns`` (same clock)."""
        delay = int(done_ns) - int(capture_ns)
        if delay < 0:
            msg = (f'done time {done_ns} precedes capture stamp {capture_ns}: the two come from different clocks '
                   '(use the node clock for both, or sim time for both)')
            raise InputError(msg)
        self._delays.append(delay)

    @property
    def count(self) -> int:
        """Observations currently in the window."""
        return len(self._delays)

    @property
    def estimate_ns(self) -> int | None:
        """Median delay in ns, or None before the first observation."""
        if not self._delays:
            return None
        return int(statistics.median(self._delays))


@dataclass(frozen=True)
class AlignConfig:
    """Parameters of :class:`AvAligner`; times in seconds.

    ``window`` (video frames in the median) and ``deadband_s`` trade lip-sync error against how often the delay
    line splices: in bench/bench_sync.py (45-110 ms anonymization delay) 60 frames and 8 ms gave the same p95
    skew as 30 frames and 4 ms with a fifth of the inserted + skipped audio (72 ms against 576 ms a minute).
    """

    sample_rate: int = 48_000
    channels: int = 1
    window: int = 60
    max_delay_s: float = 1.0
    initial_delay_s: float = 0.0
    deadband_s: float = 0.008
    max_step_s: float = 0.004
    fade_s: float = 0.002
    video_output_latency_s: float = 0.0
    audio_output_latency_s: float = 0.0

    def __post_init__(self) -> None:
        for name in ('sample_rate', 'channels', 'window'):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                msg = f'AlignConfig.{name} must be an int >= 1, got {value!r}'
                raise InputError(msg)
        for name in ('max_delay_s', 'initial_delay_s', 'deadband_s', 'max_step_s', 'fade_s',
                     'video_output_latency_s', 'audio_output_latency_s'):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                msg = f'AlignConfig.{name} must be a finite number >= 0 (seconds), got {value!r}'
                raise InputError(msg)
        if self.initial_delay_s > self.max_delay_s:
            msg = f'AlignConfig.initial_delay_s ({self.initial_delay_s}) exceeds max_delay_s ({self.max_delay_s})'
            raise InputError(msg)

    def samples(self, seconds: float) -> int:
        """Seconds to a whole number of samples at ``sample_rate``."""
        return round(seconds * self.sample_rate)


class AvAligner:
    """Delays audio so it plays in step with the (slower) anonymized video. Thread-safe.

    Call :meth:`observe_video` for every published frame and :meth:`push_audio` for every audio chunk, in
    capture order; play what ``push_audio`` returns right away.
    """

    def __init__(self, config: AlignConfig | None = None) -> None:
        self.config = config if config is not None else AlignConfig()
        c = self.config
        self.video = DelayEstimator(c.window)
        self.audio = DelayEstimator(c.window)
        self._lock = threading.Lock()
        self._audio_output_latency_ns = round(c.audio_output_latency_s * _NS)
        self._buf = np.zeros((c.samples(c.initial_delay_s), c.channels), np.float32)
        self._head_anchor_ns: int | None = None  # nominal capture time of _buf[0] is anchor + consumed samples
        self._head_samples = 0
        self._next_in_ns: int | None = None  # expected stamp of the next input chunk
        self._in_samples = 0  # samples taken in since _next_in_ns was anchored (keeps stamps exact)
        self._anchor_ns = 0
        self.inserted_samples = 0
        self.skipped_samples = 0

    def set_audio_output_latency(self, seconds: float) -> None:
        """Update the audio sink's latency once it is known (it is measured when the device opens)."""
        if not math.isfinite(seconds) or seconds < 0:
            msg = f'audio output latency must be a finite number >= 0, got {seconds!r}'
            raise InputError(msg)
        with self._lock:
            self._audio_output_latency_ns = round(seconds * _NS)

    def observe_video(self, capture_ns: int, done_ns: int) -> None:
        """A frame captured at ``capture_ns`` (header stamp) was published at ``done_ns`` (node clock)."""
        with self._lock:
            self.video.observe(capture_ns, done_ns)

    @property
    def delay_ns(self) -> int:
        """Current length of the delay line in ns."""
        with self._lock:
            return len(self._buf) * _NS // self.config.sample_rate

    @property
    def target_delay_ns(self) -> int:
        """Delay the line is moving towards, from the current estimates, clamped to [0, max_delay]."""
        with self._lock:
            return self._target_samples() * _NS // self.config.sample_rate

    def _target_samples(self) -> int:
        c = self.config
        video = self.video.estimate_ns
        if video is None:
            return c.samples(c.initial_delay_s)
        audio = self.audio.estimate_ns or 0
        target_ns = video - audio + round(c.video_output_latency_s * _NS) - self._audio_output_latency_ns
        target = round(target_ns * c.sample_rate / _NS)
        return min(max(target, 0), c.samples(c.max_delay_s))

    def push_audio(self, chunk: AudioChunk, done_ns: int | None = None) -> AudioChunk | None:
        """Take in ``chunk`` (anonymized audio) and return the audio to play now, or None if nothing is due.

        ``done_ns`` is when the chunk reached here on the clock of :meth:`observe_video`'s ``done_ns``; if None the
        audio path is taken to add no delay beyond capture (``done = end of chunk``). The returned chunk has as many
        samples as the input timeline advanced (input length, plus silence for a gap in the stamps, minus any
        overlap); its ``stamp_ns`` is the capture time of its first sample.
        """
        c = self.config
        if chunk.sample_rate != c.sample_rate or chunk.channels != c.channels:
            msg = (f'expected audio at {c.sample_rate} Hz with {c.channels} channel(s), '
                   f'got {chunk.sample_rate} Hz with {chunk.channels}')
            raise InputError(msg)
        with self._lock:
            self.audio.observe(chunk.stamp_ns, chunk.end_ns if done_ns is None else done_ns)
            samples = self._accept(chunk)
            if samples is None:
                return None
            n = len(samples)
            self._buf = np.concatenate([self._buf, samples])
            return self._emit(n)

    def _accept(self, chunk: AudioChunk) -> np.ndarray | None:
        """The chunk's new samples, with silence for a gap before it and without any overlap. Lock held."""
        c = self.config
        if self._next_in_ns is None:
            self._anchor(chunk.stamp_ns)
        assert self._next_in_ns is not None
        gap = round((chunk.stamp_ns - self._next_in_ns) * c.sample_rate / _NS)
        samples = chunk.samples
        if abs(gap) <= 1:  # stamp rounding: stay on the sample count
            pass
        elif gap > c.samples(c.max_delay_s):  # a long outage: restart the timeline, keep the current delay
            self._anchor(chunk.stamp_ns)
        elif gap > 0:  # lost chunks: their time passes as silence
            samples = np.concatenate([np.zeros((gap, c.channels), np.float32), samples])
        else:  # overlaps what was already taken in (a repeated or reordered chunk): drop the overlap
            samples = samples[-gap:]
            if len(samples) == 0:
                return None
        self._in_samples += len(samples)
        self._next_in_ns = self._anchor_ns + self._in_samples * _NS // c.sample_rate
        return samples

    def _anchor(self, stamp_ns: int) -> None:
        """Restart both timelines at ``stamp_ns``; what is buffered keeps its place just before it."""
        self._anchor_ns = stamp_ns
        self._in_samples = 0
        self._next_in_ns = stamp_ns
        self._head_anchor_ns = stamp_ns
        self._head_samples = -len(self._buf)

    def _emit(self, n: int) -> AudioChunk:
        """Output ``n`` samples, moving the delay a bounded step towards the target at a faded splice."""
        c = self.config
        assert self._head_anchor_ns is not None
        head_ns = self._head_anchor_ns + self._head_samples * _NS // c.sample_rate
        delay = len(self._buf) - n  # delay after a plain output of n samples
        error = self._target_samples() - delay
        fade = min(c.samples(c.fade_s), n // 4)
        step = 0
        if abs(error) >= max(c.samples(c.deadband_s), 1):
            max_step = min(c.samples(c.max_step_s), n - 2 * fade)
            step = max(-min(max_step, delay), min(max_step, error))
        if step == 0:
            out, consumed = self._buf[:n].copy(), n
        elif step > 0:  # longer delay: insert silence
            real = self._buf[: n - step].copy()
            out = np.concatenate([_fade_out(real[:fade]), np.zeros((step, c.channels), np.float32),
                                  _fade_in(real[fade:], fade)])
            consumed = n - step
            self.inserted_samples += step
        else:  # shorter delay: skip audio
            k = -step
            out = np.concatenate([_fade_out(self._buf[:fade]), _fade_in(self._buf[fade + k: n + k], fade)])
            consumed = n + k
            self.skipped_samples += k
        self._buf = self._buf[consumed:]
        self._head_samples += consumed
        return AudioChunk(np.ascontiguousarray(out, np.float32), head_ns, c.sample_rate)


def _ramp(n: int) -> np.ndarray:
    return ((np.arange(n, dtype=np.float32) + 0.5) / max(n, 1))[:, None]


def _fade_out(x: np.ndarray) -> np.ndarray:
    """``x`` (all of it) faded to zero."""
    return np.asarray(x * _ramp(len(x))[::-1], np.float32)


def _fade_in(x: np.ndarray, n: int) -> np.ndarray:
    """``x`` with its first ``n`` samples faded in from zero."""
    y = x.copy()
    n = min(n, len(y))
    y[:n] *= _ramp(n)
    return y
