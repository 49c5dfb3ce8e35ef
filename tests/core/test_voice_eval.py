"""Evaluation helpers: EER, WER, speech loaders (light: no Resemblyzer/pocketsphinx model runs here)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from anon_ros.core import voice_eval
from anon_ros.core.errors import InputError
from anon_ros.core.voice_eval import (
    SpeechDataMissing,
    compute_eer,
    verification_eer,
    word_error_rate,
)
from tests.core.speech_data import librivox


def test_eer_extremes_and_overlap() -> None:
    assert compute_eer([0.9, 0.8, 0.95], [0.1, 0.2, 0.3]) == 0.0
    assert compute_eer([0.1, 0.2], [0.8, 0.9]) == 1.0
    rng = np.random.default_rng(0)
    same = rng.normal(0, 1, 20000)
    assert abs(compute_eer(same, rng.normal(0, 1, 20000)) - 0.5) < 0.02  # indistinguishable: 50 %
    # Unit-variance Gaussians 2 apart: EER = Phi(-1) = 15.9 %.
    assert abs(compute_eer(rng.normal(1, 1, 20000), rng.normal(-1, 1, 20000)) - 0.1587) < 0.01
    with pytest.raises(InputError):
        compute_eer([], [0.1])


def test_verification_eer_scores_every_speaker() -> None:
    e = np.eye(3)
    res = verification_eer({'a': [e[0]], 'b': [e[1]], 'c': [e[2]]}, [('a', 'u1', e[0]), ('b', 'u2', e[1])])
    assert res.eer == 0.0 and res.n_target == 2 and res.n_nontarget == 4


def test_wer() -> None:
    assert word_error_rate(['a b c d'], ['a x c']) == 0.5  # one substitution, one deletion
    assert word_error_rate(['a b', 'c d'], ['a b', 'c d']) == 0.0
    with pytest.raises(InputError):
        word_error_rate(['a'], [])


def test_librivox_loader_has_transcripts() -> None:
    u = librivox(1)
    assert u.text == 'he was not an ill disposed young man'
    assert u.sample_rate == 16000 and 2.5 < u.duration_s < 3.5
    assert 0.01 < float(np.sqrt(np.mean(u.audio ** 2))) < 0.5  # real speech, not silence


def test_missing_data_names_the_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(voice_eval, 'POCKETSPHINX_DATA', tmp_path)
    with pytest.raises(SpeechDataMissing, match='pocketsphinx-testdata'):
        voice_eval.load_librivox()
    monkeypatch.setattr(voice_eval.shutil, 'which', lambda _name: None)
    with pytest.raises(SpeechDataMissing, match="Debian package 'flite'"):
        voice_eval.synthesize_flite('slt', 'hello')
    monkeypatch.setenv('ANON_ROS_WHEELS', str(tmp_path))
    monkeypatch.setattr(voice_eval.Path, 'home', lambda: tmp_path)
    monkeypatch.setattr(voice_eval.importlib.util, 'find_spec', lambda _name: None, raising=False)
    with pytest.raises(SpeechDataMissing, match='pip download --no-deps pyannote.audio'):
        voice_eval.load_pyannote()
