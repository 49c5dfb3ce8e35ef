"""Recorded human speech for the voice tests: LibriVox utterances from Debian pocketsphinx-testdata.

Skips (with the package name) when the data is missing, unless ANON_ROS_REQUIRE_SPEECH_DATA=1, where it fails,
so CI can insist that the install step ran.
"""

from __future__ import annotations

import functools
import os

import numpy as np
import pytest

from anon_ros.core.voice_eval import SpeechDataMissing, Utterance, load_librivox


@functools.cache
def _librivox() -> tuple[Utterance, ...]:
    return tuple(load_librivox())


def librivox(index: int = 1) -> Utterance:
    """LibriVox utterance ``index`` (0..4; 1 is the 3 s 'he was not an ill disposed young man')."""
    try:
        return _librivox()[index]
    except SpeechDataMissing as err:
        if os.environ.get('ANON_ROS_REQUIRE_SPEECH_DATA') == '1':
            pytest.fail(str(err))
        pytest.skip(str(err))
        raise  # unreachable; pytest.skip raises


def speech(index: int = 1, seconds: float | None = None) -> np.ndarray:
    """The utterance's float32 samples (16 kHz), optionally cut to ``seconds``."""
    u = librivox(index)
    return u.audio if seconds is None else u.audio[:int(seconds * u.sample_rate)]
