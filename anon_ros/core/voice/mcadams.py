"""Streaming McAdams anonymization (VoicePrivacy baseline) with optional pitch and vocal-tract-length warping.

Per frame (20 ms, sqrt-Hann, hop 10 ms): LPC envelope by autocorrelation + Levinson; each complex pole pair's
angle phi becomes ``W(phi**alpha)`` (McAdams warp, then a piecewise-linear vocal-tract-length warp W), pole radii
are clamped inside the unit circle; the residual is optionally time-scaled inside the frame (granular pitch shift);
re-synthesis, sqrt-Hann synthesis window, overlap-add. Each frame's energy is matched to the input frame's (the
warp alone raises the level up to x85 at alpha 0.5), an optional random resonance EQ (:func:`resonance_eq`, a
causal 16 ms FIR) follows, and a :class:`PeakLimiter` guards full scale.

Strength is drawn at random per run (:meth:`VoiceParams.draw`): a fixed alpha is undone by an attacker who applies
it to enrolment speech, so the configuration holds ranges, never one value.

What the measurements (bench/bench_voice.py: Resemblyzer attacker, pocketsphinx WER) chose: an upward
vocal-tract-length warp buys more privacy per WER point than McAdams alpha < 1 (fixed vtl 1.15: EER 26 %, WER +14
with the piecewise warp, +22 with a clipped linear one; fixed alpha 0.8: EER 16.8 %, WER +23); downward warps cost
far more WER (vtl 0.87: +35) for less privacy; pitch
shifting barely moves the attacker (pitch 1.33: EER 6.5 %, WER +8) and adds latency, so it is off by default.
Formant-bandwidth scaling, high-band-only warps and spectral tilt were tried and did not raise the EER at all.
Replacing the excitation barely moves the attacker either (1 draw each: whispered/noise excitation EER 12.4 %,
WER 38.3 %; monotone pulse excitation 4.3 %, 32.9 %; pulse excitation at 1.5x the tracked F0 8.7 %, 36.7 %): it
identifies speakers by the spectral envelope. A random stationary EQ does move it while costing pocketsphinx
little, because its cepstral mean normalization removes a fixed per-band offset (1 draw each: +-20 dB over 12 bands
EER 15.2 %, WER 27.1 %; three Gaussian-in-mel peaks of +15-30 dB, 200 mel wide: 32.6 %, WER 36.7 %; narrower or
more peaks cost more WER). Caveat: an attacker who flattens each utterance's long-term spectrum before embedding
undoes much of the EQ (see the RESONANT preset).

Frames are independent given their samples; streaming only buffers, so :meth:`McAdamsAnonymizer.process` over any
chunking equals :func:`anonymize_offline` of the whole signal delayed by ``latency_samples``.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field

import numpy as np
import scipy.linalg
import scipy.signal

from anon_ros.core.errors import InputError
from anon_ros.core.voice.base import FloatArray, check_mono_chunk
from anon_ros.core.voice.limiter import LimiterConfig, PeakLimiter

_F64 = np.float64


def _check_range(name: str, rng: tuple[float, float], lo: float, hi: float, *, strict: bool) -> None:
    if len(rng) != 2:
        msg = f'{name} must be a (low, high) pair, got {rng!r}'
        raise InputError(msg)
    a, b = float(rng[0]), float(rng[1])
    if not (lo <= a <= b <= hi):
        msg = f'{name} must satisfy {lo} <= low <= high <= {hi}, got {rng!r}'
        raise InputError(msg)
    if strict and not a < b:
        msg = (f'{name} must be a range (low < high), got {rng!r}: a fixed value is undone by an attacker who '
               'applies it to enrolment speech; pass explicit VoiceParams for a deterministic run')
        raise InputError(msg)


class Strength(enum.Enum):
    """Named parameter ranges.

    Measured with bench/bench_voice.py (8 speakers, 3 draws each; Resemblyzer EER for an attacker enrolled on
    original / on anonymized speech; pocketsphinx WER, 25.0 % on the originals):
    STRONG (the default, privacy first): McAdams alpha U[0.9, 1] + upward formant warp x1.22-1.32:
    EER 37.7 % / 21.0 %, WER 92.9 %. BALANCED: alpha U[0.95, 1] + warp x1.06-1.14: EER 11.6 % / 9.4 %, WER 42.9 %.
    MCADAMS: VoicePrivacy-style alpha U[0.5, 0.9] alone: EER 28.4 % / 35.5 %, WER 81.5 %.
    RESONANT: alpha U[0.9, 1] + three random resonance-EQ peaks (+15-30 dB, 200-6000 Hz): EER 32.1 % / 35.5 %,
    WER 32.3 % (latency 29.9 ms, RTF 0.039): the best privacy within the WER budget, but an attacker who flattens
    each utterance's long-term spectrum before embedding gets EER 16.5 % (1 draw; STRONG keeps 30.7 %), so it
    is not the default. Four peaks of +18-32 dB with alpha U[0.85, 1]: EER 33.3 % / 41.1 %, WER 64.4 %.
    No DSP setting reached EER >= 40 % with WER within 15 points of the original.
    """

    STRONG = 'strong'
    BALANCED = 'balanced'
    MCADAMS = 'mcadams'
    RESONANT = 'resonant'

    @classmethod
    def parse(cls, name: str) -> Strength:
        """Map a parameter value to a strength; raise :class:`InputError` naming the allowed values."""
        try:
            return cls(name.strip().lower())
        except ValueError as err:
            allowed = ', '.join(s.value for s in cls)
            msg = f'voice strength must be one of {allowed}, got {name!r}'
            raise InputError(msg) from err


@dataclass(frozen=True)
class McAdamsConfig:
    """Framing, LPC order and the ranges the per-run strength is drawn from.

    ``alpha_range``: McAdams coefficient (uniform). ``vtl_range``: formant-frequency scale factor (log-uniform;
    > 1 = shorter vocal tract); with ``vtl_random_direction`` (needs ``1 <= low``) the drawn factor is inverted with
    probability 1/2, so every run moves the formants by at least ``low`` in an unknown direction. ``pitch_range``
    and ``pitch_random_direction``: the same for the pitch factor (factors > 1 add look-ahead latency).
    ``(1, 1)`` disables either. Measured (bench/bench_voice.py): downward formant shifts cost far more
    intelligibility than upward ones, so the default warps upward only; its size stays random.
    ``eq_peaks`` (0 = off) resonance peaks of the output EQ: centres uniform in mel over ``eq_band_hz``, gains
    uniform in ``eq_gain_db_range``, Gaussian in mel with standard deviation ``eq_width_mel``.
    """

    sample_rate: int = 16000
    frame_ms: float = 20.0
    hop_ms: float = 10.0
    lpc_order: int = 20
    alpha_range: tuple[float, float] = (0.9, 1.0)
    vtl_range: tuple[float, float] = (1.22, 1.32)
    vtl_random_direction: bool = False
    pitch_range: tuple[float, float] = (1.0, 1.0)
    pitch_random_direction: bool = False
    eq_peaks: int = 0
    eq_gain_db_range: tuple[float, float] = (15.0, 30.0)
    eq_band_hz: tuple[float, float] = (200.0, 6000.0)
    eq_width_mel: float = 200.0
    max_pole_radius: float = 0.995
    limiter: LimiterConfig = field(default_factory=LimiterConfig)

    def __post_init__(self) -> None:
        if not 8000 <= self.sample_rate <= 96000:
            msg = f'sample_rate must be in [8000, 96000] Hz, got {self.sample_rate}'
            raise InputError(msg)
        if not 0.0 < self.hop_ms <= self.frame_ms / 2:
            msg = (f'hop_ms must be in (0, frame_ms/2] for sqrt-Hann overlap-add, got hop {self.hop_ms} '
                   f'frame {self.frame_ms}')
            raise InputError(msg)
        n, h = self.frame_samples, self.hop_samples
        if n % h != 0:
            msg = f'frame length must be a multiple of the hop, got {n} and {h} samples'
            raise InputError(msg)
        if not 2 <= self.lpc_order < n // 2:
            msg = f'lpc_order must be in [2, {n // 2}) for {n}-sample frames, got {self.lpc_order}'
            raise InputError(msg)
        _check_range('alpha_range', self.alpha_range, 0.3, 1.5, strict=True)
        _check_range('vtl_range', self.vtl_range, 0.6, 1.6, strict=False)
        _check_range('pitch_range', self.pitch_range, 0.5, 2.0, strict=False)
        for name, rng, both in (('vtl', self.vtl_range, self.vtl_random_direction),
                                ('pitch', self.pitch_range, self.pitch_random_direction)):
            if both and rng[0] < 1.0:
                msg = f'{name}_random_direction needs {name}_range >= 1 (sizes of the change), got {rng!r}'
                raise InputError(msg)
        if not 0 <= self.eq_peaks <= 8:
            msg = f'eq_peaks must be in [0, 8], got {self.eq_peaks}'
            raise InputError(msg)
        if self.eq_peaks:
            _check_range('eq_gain_db_range', self.eq_gain_db_range, 0.0, 40.0, strict=True)
            _check_range('eq_band_hz', self.eq_band_hz, 20.0, self.sample_rate / 2, strict=True)
            if not 20.0 <= self.eq_width_mel <= 1000.0:
                msg = f'eq_width_mel must be in [20, 1000], got {self.eq_width_mel}'
                raise InputError(msg)
        if not 0.5 < self.max_pole_radius < 1.0:
            msg = ('max_pole_radius must be in (0.5, 1) to keep poles inside the unit circle, got '
                   f'{self.max_pole_radius}')
            raise InputError(msg)

    @classmethod
    def preset(cls, strength: Strength, sample_rate: int = 16000) -> McAdamsConfig:
        """The ranges of a named strength (measured trade-offs in bench/bench_voice.py)."""
        if strength is Strength.STRONG:
            return cls(sample_rate=sample_rate)
        if strength is Strength.BALANCED:
            return cls(sample_rate=sample_rate, alpha_range=(0.95, 1.0), vtl_range=(1.06, 1.14))
        if strength is Strength.MCADAMS:
            return cls(sample_rate=sample_rate, alpha_range=(0.5, 0.9), vtl_range=(1.0, 1.0))
        if strength is Strength.RESONANT:
            return cls(sample_rate=sample_rate, alpha_range=(0.9, 1.0), vtl_range=(1.0, 1.0), eq_peaks=3)
        msg = f'unknown strength {strength!r}'
        raise AssertionError(msg)

    @property
    def frame_samples(self) -> int:
        """Analysis/synthesis frame length in samples."""
        return int(round(self.frame_ms * 1e-3 * self.sample_rate))

    @property
    def hop_samples(self) -> int:
        """Hop between frames in samples."""
        return int(round(self.hop_ms * 1e-3 * self.sample_rate))


@dataclass(frozen=True)
class VoiceParams:
    """One run's anonymization strength: McAdams alpha, formant scale, pitch factor, EQ peaks (Hz, dB)."""

    alpha: float
    vtl: float = 1.0
    pitch: float = 1.0
    eq: tuple[tuple[float, float], ...] = ()

    def __post_init__(self) -> None:
        if not 0.3 <= self.alpha <= 1.5:
            msg = f'alpha must be in [0.3, 1.5], got {self.alpha}'
            raise InputError(msg)
        if not 0.6 <= self.vtl <= 1.6:
            msg = f'vtl must be in [0.6, 1.6], got {self.vtl}'
            raise InputError(msg)
        if not 0.5 <= self.pitch <= 2.0:
            msg = f'pitch must be in [0.5, 2.0], got {self.pitch}'
            raise InputError(msg)
        for centre_hz, gain_db in self.eq:
            if not (centre_hz > 0.0 and -40.0 <= gain_db <= 40.0):
                msg = f'eq peaks must be (centre Hz > 0, gain in [-40, 40] dB), got {self.eq!r}'
                raise InputError(msg)

    @classmethod
    def draw(cls, config: McAdamsConfig, rng: np.random.Generator | None = None) -> VoiceParams:
        """Draw one run's strength from ``config``'s ranges (OS entropy when ``rng`` is None)."""
        gen = rng if rng is not None else np.random.default_rng()
        alpha = float(gen.uniform(*config.alpha_range))
        vtl = _draw_factor(gen, config.vtl_range, config.vtl_random_direction)
        pitch = _draw_factor(gen, config.pitch_range, config.pitch_random_direction)
        # Drawn last and only when enabled, so the other presets' draws for a given seed are unchanged.
        lo, hi = (_mel(f) for f in config.eq_band_hz)
        eq = tuple((_mel_to_hz(float(gen.uniform(lo, hi))), float(gen.uniform(*config.eq_gain_db_range)))
                   for _ in range(config.eq_peaks))
        return cls(alpha=alpha, vtl=vtl, pitch=pitch, eq=eq)


def _draw_factor(gen: np.random.Generator, rng: tuple[float, float], random_direction: bool) -> float:
    """A factor in ``rng`` (log-uniform), inverted with probability 1/2 when ``random_direction``."""
    size = math.exp(gen.uniform(math.log(rng[0]), math.log(rng[1])))
    flip = gen.random() < 0.5  # drawn either way, so the alpha/vtl/pitch sequence is the same for both modes
    return float(1.0 / size if random_direction and flip else size)


def _mel(hz: float) -> float:
    return 2595.0 * math.log10(1.0 + hz / 700.0)


def _mel_to_hz(mel: float) -> float:
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


def resonance_eq(config: McAdamsConfig, params: VoiceParams) -> np.ndarray | None:
    """Minimum-phase FIR (16 ms) of ``params.eq``'s Gaussian-in-mel peaks; None when there are none.

    A stationary EQ is a constant offset per mel band, which the cepstral mean normalization of ASR front ends
    removes, while Resemblyzer's (linear, not log) mel power is dominated by the boosted bands. Peaks wide in mel
    keep each ASR filter's gain nearly flat, so the offset stays removable. The gain is normalized to unity for a
    speech-like spectrum (-6 dB/octave above 500 Hz) so the limiter stays idle on normal speech.
    """
    if not params.eq:
        return None
    fs = config.sample_rate
    taps = int(round(0.016 * fs))
    nfft = 1 << (4 * taps - 1).bit_length()
    f = np.linspace(0.0, fs / 2, nfft // 2 + 1)
    m = 2595.0 * np.log10(1.0 + f / 700.0)
    gain_db = np.zeros_like(f)
    for centre_hz, g in params.eq:
        gain_db += g * np.exp(-0.5 * ((m - _mel(centre_hz)) / config.eq_width_mel) ** 2)
    log_mag = gain_db * (math.log(10.0) / 20.0)
    # Minimum phase by folding the real cepstrum of the log magnitude (homomorphic method).
    cep = np.fft.irfft(log_mag, nfft)
    fold = np.zeros(nfft)
    fold[0] = fold[nfft // 2] = 1.0
    fold[1:nfft // 2] = 2.0
    h = np.fft.irfft(np.exp(np.fft.rfft(cep * fold)), nfft)[:taps]
    h *= np.hanning(2 * taps)[taps:]  # taper the truncation
    weight = 1.0 / (1.0 + (f / 500.0) ** 2)
    power = float(np.sum(weight * np.abs(np.fft.rfft(h, nfft)) ** 2) / np.sum(weight))
    out: np.ndarray = (h / math.sqrt(power)).astype(_F64)
    return out


def _periodic_sqrt_hann(n: int) -> np.ndarray:
    # Periodic Hann sums to exactly 1 at 50 % overlap; sqrt of it on analysis and synthesis gives Hann overall.
    w: np.ndarray = np.sqrt(scipy.signal.get_window('hann', n, fftbins=True)).astype(_F64)
    return w


class _FrameWarper:
    """The per-frame work shared by the streaming and the offline paths (so both are the same function)."""

    def __init__(self, config: McAdamsConfig, params: VoiceParams) -> None:
        self.config = config
        self.params = params
        n = config.frame_samples
        self.n = n
        self.hop = config.hop_samples
        # Overlap-add of hann(n) at hop n/2 sums to 1; at smaller hops it sums to n/(2*hop).
        self.win = _periodic_sqrt_hann(n) / math.sqrt(n / (2 * self.hop))
        self.hann = _periodic_sqrt_hann(n) ** 2
        self.seg = int(round(n * params.pitch)) if params.pitch != 1.0 else n
        self.seg_win = _periodic_sqrt_hann(self.seg)
        self.behind = max(0, self.seg // 2 - n // 2)  # residual samples needed before the frame
        self.ahead = max(0, (self.seg - self.seg // 2) - (n - n // 2))  # ... and after it (look-ahead)
        scale = self.seg / n
        self.src_pos = self.seg // 2 + (np.arange(n, dtype=_F64) - n // 2) * scale
        p = config.lpc_order
        self.companion = np.zeros((p, p), dtype=_F64)
        self.companion[1:, :-1] = np.eye(p - 1)

    def warp_poles(self, a: np.ndarray) -> np.ndarray:
        """McAdams + VTL warp of the complex poles of 1/A(z); radii clamped inside the unit circle."""
        p = a.size - 1
        comp = self.companion
        comp[0, :] = -a[1:]
        poles = np.linalg.eigvals(comp)
        mag = np.minimum(np.abs(poles), self.config.max_pole_radius)
        upper = poles.imag > 1e-12  # one pole of each conjugate pair
        real = np.abs(poles.imag) <= 1e-12
        phi = self.vtl_warp(np.angle(poles[upper]) ** self.params.alpha)
        # Rebuild A'(z) from real second-order sections: exact conjugate symmetry, no complex np.poly.
        out = np.ones(1)
        for r, t in zip(mag[upper], phi, strict=True):
            out = np.convolve(out, (1.0, -2.0 * r * math.cos(t), r * r))
        for r in (mag[real] * np.sign(poles[real].real)):
            out = np.convolve(out, (1.0, -r))
        if out.size != p + 1:  # an unpaired complex pole (numerical corner case): keep the original envelope
            return a
        return out

    def vtl_warp(self, phi: np.ndarray) -> np.ndarray:
        """Piecewise-linear VTLN warp: ``vtl * phi`` up to a knee at 0.85 pi (output), then a straight line to pi.

        A plain ``vtl * phi`` clipped at pi would pile the upper formants up at Nyquist, where they resonate and,
        after the energy match, steal the level of the speech band.
        """
        vtl = self.params.vtl
        knee_out = 0.85 * math.pi
        knee_in = knee_out / max(vtl, 1.0) if vtl >= 1.0 else knee_out
        lo = vtl * phi
        hi = vtl * knee_in + (phi - knee_in) * (math.pi - vtl * knee_in) / (math.pi - knee_in)
        return np.minimum(np.where(phi <= knee_in, lo, hi), math.pi * 0.995)

    def frame(self, seg: np.ndarray) -> np.ndarray:
        """Anonymize one frame; ``seg`` holds behind + n + ahead samples; returns n windowed output samples."""
        n, b = self.n, self.behind
        x = seg[b:b + n]
        if not np.any(x):
            return np.zeros(n, dtype=_F64)  # digital silence stays exact silence
        xw = x * self.win
        r = np.correlate(xw, xw, mode='full')[n - 1:n + self.config.lpc_order]
        if r[0] <= 1e-20:
            return np.zeros(n, dtype=_F64)
        r = r.copy()
        r[0] *= 1.0 + 1e-9  # white-noise correction keeps the Toeplitz system well conditioned
        coef = scipy.linalg.solve_toeplitz(r[:-1], -r[1:])
        a = np.concatenate(([1.0], coef))
        a_new = self.warp_poles(a)
        if self.seg == n:
            res = np.convolve(xw, a)[:n]  # FIR A(z), zero initial state
        else:
            start = b + n // 2 - self.seg // 2
            long = seg[start:start + self.seg] * self.seg_win
            res = np.interp(self.src_pos, np.arange(self.seg, dtype=_F64), np.convolve(long, a)[:self.seg])
        y = scipy.signal.lfilter([1.0], a_new, res) * self.win
        e_out = float(np.dot(y, y))
        if not e_out > 0.0 or not math.isfinite(e_out):
            return np.zeros(n, dtype=_F64)
        # Same energy as the unmodified frame would have after analysis and synthesis windows (x * hann).
        xh = x * self.win * self.win
        out: np.ndarray = y * math.sqrt(float(np.dot(xh, xh)) / e_out)
        return out


def anonymize_offline(x: FloatArray, config: McAdamsConfig, params: VoiceParams) -> FloatArray:
    """Whole-signal reference: frame the zero-padded signal at once, overlap-add, limit; ``len(x)`` samples out."""
    x = check_mono_chunk(x, 'signal')
    fw = _FrameWarper(config, params)
    n, hop = fw.n, fw.hop
    pad = n - hop + fw.behind  # zeros before x so the first frame's segment starts at index 0
    xp = np.concatenate((np.zeros(pad), x.astype(_F64), np.zeros(n + fw.ahead + hop)))
    acc = np.zeros(xp.size, dtype=_F64)
    q = fw.behind
    while q - pad < x.size and q + n + fw.ahead <= xp.size:
        acc[q:q + n] += fw.frame(xp[q - fw.behind:q + n + fw.ahead])
        q += hop
    y = acc[pad:pad + x.size]
    eq = resonance_eq(config, params)
    if eq is not None:
        y = scipy.signal.lfilter(eq, [1.0], y)
    return PeakLimiter(config.limiter, config.sample_rate).process(y.astype(np.float32))


class McAdamsAnonymizer:
    """Streaming :class:`StreamingVoiceAnonymizer` backend; ``params`` drawn at random when not given."""

    def __init__(self, config: McAdamsConfig | None = None, params: VoiceParams | None = None,
                 rng: np.random.Generator | None = None, chunk_ms: float = 10.0) -> None:
        self._config = config if config is not None else McAdamsConfig()
        self._params = params if params is not None else VoiceParams.draw(self._config, rng)
        self._fw = _FrameWarper(self._config, self._params)
        self._chunk = max(1, int(round(chunk_ms * 1e-3 * self._config.sample_rate)))
        self._limiter = PeakLimiter(self._config.limiter, self._config.sample_rate)
        self._eq = resonance_eq(self._config, self._params)
        self.reset()

    @property
    def config(self) -> McAdamsConfig:
        """The configuration (ranges, framing)."""
        return self._config

    @property
    def params(self) -> VoiceParams:
        """This run's drawn strength (kept across :meth:`reset`)."""
        return self._params

    @property
    def sample_rate(self) -> int:
        """Samples per second."""
        return self._config.sample_rate

    @property
    def chunk_samples(self) -> int:
        """Preferred chunk (10 ms by default); any length works."""
        return self._chunk

    @property
    def latency_samples(self) -> int:
        """Frame length - 1 + pitch look-ahead: the fixed delay for sample-exact chunk-in, chunk-out."""
        return self._fw.n - 1 + self._fw.ahead

    def reset(self) -> None:
        """Empty all buffers (the stream restarts as if from silence); the drawn params stay."""
        fw = self._fw
        self._pad = fw.n - fw.hop + fw.behind
        # Input buffer in padded coordinates: _buf[0] is padded index _buf_start.
        self._buf = np.zeros(self._pad, dtype=_F64)
        self._buf_start = 0
        self._q = fw.behind  # padded index where the next frame starts
        self._acc = np.zeros(fw.n, dtype=_F64)  # overlap-add accumulator starting at _q
        self._out = np.zeros(self.latency_samples, dtype=np.float32)  # FIFO primed with the delay
        self._eq_state = np.zeros(0 if self._eq is None else self._eq.size - 1, dtype=_F64)
        self._limiter.reset()

    def process(self, chunk: FloatArray) -> FloatArray:
        """Consume ``chunk`` and return ``len(chunk)`` samples (delayed by ``latency_samples``)."""
        chunk = check_mono_chunk(chunk)
        fw = self._fw
        n, hop = fw.n, fw.hop
        self._buf = np.concatenate((self._buf, chunk.astype(_F64)))
        buf_end = self._buf_start + self._buf.size
        done: list[np.ndarray] = []
        while self._q + n + fw.ahead <= buf_end:
            lo = self._q - fw.behind - self._buf_start
            self._acc += fw.frame(self._buf[lo:lo + fw.behind + n + fw.ahead])
            # Samples before the next frame start are final.
            done.append(self._acc[:hop].copy())
            self._acc = np.concatenate((self._acc[hop:], np.zeros(hop)))
            self._q += hop
        # Drop input nobody needs any more (the next frame's segment starts at _q - behind).
        keep_from = self._q - fw.behind - self._buf_start
        if keep_from > 0:
            self._buf = self._buf[keep_from:]
            self._buf_start += keep_from
        if done:
            final = np.concatenate(done)
            first = self._q - hop * len(done)  # padded index of final[0]
            skip = max(0, self._pad - first)  # outputs for negative time (the front padding) are dropped
            final = final[skip:]
            if self._eq is not None and final.size:
                final, self._eq_state = scipy.signal.lfilter(self._eq, [1.0], final, zi=self._eq_state)
            self._out = np.concatenate((self._out, self._limiter.process(final.astype(np.float32))))
        k = chunk.size
        out, self._out = self._out[:k], self._out[k:]
        if out.size != k:  # cannot happen by construction; fail loudly rather than emit a short chunk
            msg = f'internal buffering error: expected {k} output samples, had {out.size}'
            raise AssertionError(msg)
        return out

    def flush(self) -> FloatArray:
        """Return the held-back ``latency_samples`` (as if silence followed) and reset."""
        tail = self.process(np.zeros(self.latency_samples, dtype=np.float32))
        self.reset()
        return tail
