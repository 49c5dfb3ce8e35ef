"""Reusable pieces for evaluating voice anonymization: speech data from registry packages, a Resemblyzer
speaker-verification attacker, pocketsphinx WER, and EER.

Heavy dependencies (resemblyzer + torch, pocketsphinx) are imported lazily, and a missing one raises
:class:`~anon_ros.core.errors.ModelError` naming the pip package; missing speech data raises
:class:`SpeechDataMissing` naming the Debian or pip package that provides it. Nothing here imports rclpy.

Speech sources (all offline, all from package registries):

* ``librivox``: Debian ``pocketsphinx-testdata``, 5 transcribed LibriVox utterances of one reader
  (Sense and Sensibility ch. 1), 16 kHz.
* ``cards``: Debian ``pocketsphinx-testdata``, 5 transcribed utterances of one speaker (card names), 16 kHz.
* ``pyannote``: ``sample.wav`` of the ``pyannote.audio`` wheel (two telephone speakers, Diane and Sheila, with an
  STM transcript); found installed, or as a downloaded wheel (``pip download --no-deps pyannote.audio==4.0.7``)
  in ``$ANON_ROS_WHEELS`` or ``~/.cache/anon_ros/wheels``.
* ``flite``: Debian ``flite`` voices kal16, awb, rms, slt (synthetic, well separated) speaking Harvard sentences.
"""

from __future__ import annotations

import glob
import importlib.util
import io
import math
import os
import shutil
import subprocess
import tempfile
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from math import gcd
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.io.wavfile
import scipy.signal

from anon_ros.core.errors import AnonRosError, InputError, ModelError

FloatArray = npt.NDArray[np.float32]

EVAL_RATE = 16000
POCKETSPHINX_DATA = Path('/usr/share/pocketsphinx/test/data')

# Harvard sentences (IEEE 1969 lists 1-2, public domain): phonetically balanced text for the flite voices.
HARVARD_SENTENCES: tuple[str, ...] = (
    'the birch canoe slid on the smooth planks',
    'glue the sheet to the dark blue background',
    'it is easy to tell the depth of a well',
    'these days a chicken leg is a rare dish',
    'rice is often served in round bowls',
    'the juice of lemons makes fine punch',
    'the box was thrown beside the parked truck',
    'the hogs were fed chopped corn and garbage',
    'four hours of steady work faced us',
    'a large size in stockings is hard to sell',
    'the boy was there when the sun rose',
    'a rod is used to catch pink salmon',
)
FLITE_VOICES: tuple[str, ...] = ('kal16', 'awb', 'rms', 'slt')


class SpeechDataMissing(AnonRosError):  # noqa: N818 - public name other modules use
    """A speech data set is not installed; the message says which package provides it."""


@dataclass(frozen=True)
class Utterance:
    """One utterance of one speaker, mono float32 in [-1, 1] at ``sample_rate``; ``text`` lower-case words or ''."""

    speaker: str
    utt_id: str
    audio: FloatArray
    sample_rate: int
    text: str
    source: str

    def __post_init__(self) -> None:
        if not isinstance(self.audio, np.ndarray) or self.audio.ndim != 1 or self.audio.dtype != np.float32:
            got = getattr(self.audio, 'shape', type(self.audio).__name__), getattr(self.audio, 'dtype', None)
            msg = f'utterance audio must be 1-D float32, got {got}'
            raise InputError(msg)
        if self.sample_rate <= 0:
            msg = f'sample_rate must be positive, got {self.sample_rate}'
            raise InputError(msg)
        if self.audio.size == 0:
            msg = f'utterance {self.utt_id!r} is empty'
            raise InputError(msg)

    @property
    def duration_s(self) -> float:
        """Length in seconds."""
        return self.audio.size / self.sample_rate


def to_float_mono(data: np.ndarray) -> FloatArray:
    """int16/int32/float WAV data (samples x channels) to mono float32 in [-1, 1]."""
    if data.dtype == np.int16:
        f = data.astype(np.float32) / 32768.0
    elif data.dtype == np.int32:
        f = data.astype(np.float32) / 2147483648.0
    elif np.issubdtype(data.dtype, np.floating):
        f = data.astype(np.float32)
    else:
        msg = f'expected int16, int32 or float WAV samples, got {data.dtype}'
        raise InputError(msg)
    if f.ndim == 2:
        f = f.mean(axis=1).astype(np.float32)
    return f


def resample(x: FloatArray, rate: int, target: int = EVAL_RATE) -> FloatArray:
    """Offline polyphase resampling (evaluation only; the stream path has its own stateful resampler)."""
    if rate == target:
        return x
    g = gcd(rate, target)
    out: FloatArray = scipy.signal.resample_poly(x, target // g, rate // g).astype(np.float32)
    return out


def _read_wav(src: str | Path | io.BytesIO) -> tuple[FloatArray, int]:
    rate, data = scipy.io.wavfile.read(src)
    return to_float_mono(data), int(rate)


def _need_pocketsphinx_data() -> Path:
    if not (POCKETSPHINX_DATA / 'librivox' / 'transcription').is_file():
        msg = (f'speech test data not found under {POCKETSPHINX_DATA}: install the Debian package '
               "'pocketsphinx-testdata' (apt-get install pocketsphinx-testdata)")
        raise SpeechDataMissing(msg)
    return POCKETSPHINX_DATA


def _read_transcripts(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line.endswith(')') or '(' not in line:
            continue
        text, _, uid = line.rpartition('(')
        words = [w for w in text.split() if w not in ('<s>', '</s>')]
        out[uid.rstrip(')').strip()] = ' '.join(words).lower()
    return out


def _load_testdata(folder: str, transcript: str, speaker: str, uid_prefix: str) -> list[Utterance]:
    """The transcribed utterances of one speaker folder of Debian pocketsphinx-testdata."""
    root = _need_pocketsphinx_data() / folder
    texts = _read_transcripts(root / transcript)
    utts = []
    for uid in sorted(texts):
        audio, rate = _read_wav(root / f'{uid}.wav')
        utts.append(Utterance(speaker, f'{uid_prefix}{uid}', audio, rate, texts[uid], 'pocketsphinx-testdata'))
    return utts


def load_librivox() -> list[Utterance]:
    """The 5 transcribed LibriVox utterances (one reader) of Debian pocketsphinx-testdata."""
    return _load_testdata('librivox', 'transcription', 'librivox_reader', '')


def load_cards() -> list[Utterance]:
    """The 5 transcribed 'cards' utterances (one speaker) of Debian pocketsphinx-testdata."""
    return _load_testdata('cards', 'cards.transcription', 'cards_speaker', 'cards_')


def _find_pyannote_sample() -> tuple[bytes, bytes]:
    """(sample.wav bytes, sample.stm bytes) from an installed pyannote.audio or a downloaded wheel."""
    try:
        spec = importlib.util.find_spec('pyannote.audio')
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        d = Path(next(iter(spec.submodule_search_locations))) / 'sample'
        if (d / 'sample.wav').is_file():
            return (d / 'sample.wav').read_bytes(), (d / 'sample.stm').read_bytes()
    dirs = [os.environ.get('ANON_ROS_WHEELS', ''), str(Path.home() / '.cache' / 'anon_ros' / 'wheels')]
    for folder in dirs:
        for whl in sorted(glob.glob(os.path.join(folder, 'pyannote_audio-*.whl')) if folder else [], reverse=True):
            with zipfile.ZipFile(whl) as z:
                names = set(z.namelist())
                if 'pyannote/audio/sample/sample.wav' in names:
                    return (z.read('pyannote/audio/sample/sample.wav'), z.read('pyannote/audio/sample/sample.stm'))
    msg = ("pyannote.audio's sample.wav not found: run 'pip download --no-deps pyannote.audio==4.0.7 -d "
           "~/.cache/anon_ros/wheels' (or set ANON_ROS_WHEELS to the folder holding the wheel)")
    raise SpeechDataMissing(msg)


def load_pyannote(min_s: float = 1.0) -> list[Utterance]:
    """Diane's and Sheila's STM-transcribed turns (>= ``min_s`` s) from pyannote.audio's sample.wav."""
    wav, stm = _find_pyannote_sample()
    audio, rate = _read_wav(io.BytesIO(wav))
    utts = []
    for i, line in enumerate(stm.decode().splitlines()):
        parts = line.split(maxsplit=5)
        if len(parts) < 6:
            continue
        spk, t0, t1, text = parts[2], float(parts[3]), float(parts[4]), parts[5]
        if t1 - t0 < min_s:
            continue
        seg = audio[int(t0 * rate):int(t1 * rate)]
        words = ''.join(c if c.isalnum() or c in " '" else ' ' for c in text.lower()).split()
        utts.append(Utterance(f'pyannote_{spk.lower()}', f'pyannote_{i:02d}', seg, rate, ' '.join(words),
                              'pyannote.audio'))
    return utts


def synthesize_flite(voice: str, text: str, utt_id: str = '') -> Utterance:
    """Speak ``text`` with the Debian ``flite`` voice ``voice`` (16 kHz float32)."""
    exe = shutil.which('flite')
    if exe is None:
        msg = "the 'flite' program is missing: install the Debian package 'flite' (apt-get install flite)"
        raise SpeechDataMissing(msg)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / 'utt.wav'
        try:
            subprocess.run([exe, '-voice', voice, '-t', text, '-o', str(out)], check=True, capture_output=True,
                           timeout=60)
        except subprocess.CalledProcessError as err:
            msg = f'flite failed for voice {voice!r}: {err.stderr.decode(errors="replace").strip()}'
            raise SpeechDataMissing(msg) from err
        audio, rate = _read_wav(out)
    audio = resample(audio, rate)
    return Utterance(f'flite_{voice}', utt_id or f'flite_{voice}', audio, EVAL_RATE, text, 'flite')


def load_flite(voices: Sequence[str] = FLITE_VOICES, sentences: Sequence[str] = HARVARD_SENTENCES) -> list[Utterance]:
    """Every voice speaking every sentence."""
    return [synthesize_flite(v, s, f'flite_{v}_{i:02d}') for v in voices for i, s in enumerate(sentences)]


def load_speech(sets: Iterable[str]) -> list[Utterance]:
    """Utterances of the named sets ('librivox', 'cards', 'pyannote', 'flite'), resampled to 16 kHz."""
    loaders = {'librivox': load_librivox, 'cards': load_cards, 'pyannote': load_pyannote, 'flite': load_flite}
    out: list[Utterance] = []
    for name in sets:
        if name not in loaders:
            msg = f'speech set must be one of {sorted(loaders)}, got {name!r}'
            raise InputError(msg)
        for u in loaders[name]():
            if u.sample_rate != EVAL_RATE:
                u = Utterance(u.speaker, u.utt_id, resample(u.audio, u.sample_rate), EVAL_RATE, u.text, u.source)
            out.append(u)
    return out


# ---------------------------------------------------------------------------------------------- metrics


def compute_eer(target: Sequence[float] | np.ndarray, nontarget: Sequence[float] | np.ndarray) -> float:
    """Equal error rate (0..1) of similarity scores: higher means 'same speaker'. Interpolated at the crossing."""
    t = np.asarray(target, dtype=np.float64)
    n = np.asarray(nontarget, dtype=np.float64)
    if t.size == 0 or n.size == 0:
        msg = f'EER needs target and non-target scores, got {t.size} and {n.size}'
        raise InputError(msg)
    thr = np.unique(np.concatenate((t, n, [-np.inf, np.inf])))
    frr = np.array([np.mean(t < th) for th in thr])  # targets rejected
    far = np.array([np.mean(n >= th) for th in thr])  # non-targets accepted
    d = far - frr  # decreasing from 1 to -1
    i = int(np.argmax(d <= 0))
    if i == 0:
        return float(frr[0])
    d0, d1 = d[i - 1], d[i]
    w = d0 / (d0 - d1) if d0 != d1 else 0.0
    return float((1 - w) * (far[i - 1] + frr[i - 1]) / 2 + w * (far[i] + frr[i]) / 2)


def _edit_distance(ref: Sequence[str], hyp: Sequence[str]) -> int:
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1]


def word_error_rate(refs: Sequence[str], hyps: Sequence[str]) -> float:
    """Corpus WER (0..): total word edits over total reference words."""
    if len(refs) != len(hyps):
        msg = f'refs and hyps must pair up, got {len(refs)} and {len(hyps)}'
        raise InputError(msg)
    words = sum(len(r.split()) for r in refs)
    if words == 0:
        msg = 'WER needs at least one reference word'
        raise InputError(msg)
    return sum(_edit_distance(r.split(), h.split()) for r, h in zip(refs, hyps, strict=True)) / words


# ---------------------------------------------------------------------------------------------- attackers


class ResemblyzerAttacker:
    """Speaker embeddings from Resemblyzer's pretrained GE2E d-vector model (ships in its PyPI package)."""

    def __init__(self) -> None:
        try:
            from resemblyzer import VoiceEncoder, preprocess_wav
        except ImportError as err:
            msg = ("the speaker-verification attacker needs 'resemblyzer==0.1.4' with a CPU torch: "
                   "pip install torch==2.13.0 'setuptools<81' resemblyzer==0.1.4 "
                   f'({err})')
            raise ModelError(msg) from err
        self._encoder: Any = VoiceEncoder('cpu', verbose=False)
        self._preprocess: Any = preprocess_wav

    def embed(self, audio: FloatArray, sample_rate: int) -> np.ndarray:
        """L2-normalized 256-d utterance embedding."""
        wav = self._preprocess(audio.astype(np.float32), source_sr=sample_rate)
        if wav.size < sample_rate // 2:  # VAD left almost nothing: embed the raw signal instead
            wav = resample(audio, sample_rate)
        return np.asarray(self._encoder.embed_utterance(wav), dtype=np.float64)


class PocketsphinxAsr:
    """Offline ASR with pocketsphinx's bundled en-us model (weak: ~20 % WER on clean read speech)."""

    def __init__(self) -> None:
        try:
            from pocketsphinx import Decoder
        except ImportError as err:
            msg = f"WER needs 'pocketsphinx==5.1.1' (pip install pocketsphinx==5.1.1) ({err})"
            raise ModelError(msg) from err
        self._decoder: Any = Decoder(samprate=EVAL_RATE, loglevel='FATAL')

    def transcribe(self, audio: FloatArray, sample_rate: int) -> str:
        """Lower-case words, no fillers."""
        x = resample(audio, sample_rate)
        pcm = np.clip(np.round(x * 32767.0), -32768, 32767).astype('<i2').tobytes()
        d = self._decoder
        d.start_utt()
        d.process_raw(pcm, full_utt=True)
        d.end_utt()
        hyp = d.hyp()
        text = hyp.hypstr if hyp is not None else ''
        return ' '.join(w for w in text.lower().split() if not w.startswith(('<', '[', '++')))


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two vectors."""
    den = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(np.dot(a, b) / den) if den > 0 else 0.0


@dataclass(frozen=True)
class VerificationResult:
    """EER and the trial counts it came from."""

    eer: float
    n_target: int
    n_nontarget: int


def verification_eer(enrol: dict[str, list[np.ndarray]],
                     trials: Sequence[tuple[str, str, np.ndarray]]) -> VerificationResult:
    """EER of trials ``(speaker, utt_id, embedding)`` against each speaker's mean enrolment embedding.

    Every trial is scored against every enrolled speaker: same speaker = target, other = non-target.
    """
    models = {s: np.mean(v, axis=0) for s, v in enrol.items() if v}
    if len(models) < 2:
        msg = f'verification needs >= 2 enrolled speakers, got {len(models)}'
        raise InputError(msg)
    tgt: list[float] = []
    non: list[float] = []
    for spk, _uid, emb in trials:
        for s, m in models.items():
            (tgt if s == spk else non).append(cosine(emb, m))
    return VerificationResult(compute_eer(tgt, non), len(tgt), len(non))


def percent(x: float) -> str:
    """0.123 -> '12.3 %'."""
    return f'{100.0 * x:.1f} %' if math.isfinite(x) else 'n/a'
