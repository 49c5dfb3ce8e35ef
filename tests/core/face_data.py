"""Shared helpers for the face tests: real photos and built models, each found once or failed with a clear message.

Test venv needs (PyPI): scikit-image, matplotlib (photos), dlib-bin + face_recognition_models==0.3.0 (attacker);
the models come from scripts/build_models.sh; bus.jpg/zidane.jpg from its export venv's ultralytics.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pytest

from anon_ros.core.errors import ModelError
from anon_ros.core.sample_images import SampleImageMissingError, load_sample_image


def sample(name: str) -> np.ndarray:
    """A real photo of people from a registry package (fails the test, naming the package, when missing)."""
    try:
        return load_sample_image(name)
    except SampleImageMissingError as err:
        pytest.fail(str(err))


@lru_cache(maxsize=1)
def _models() -> tuple[object, object] | str:
    from anon_ros.core.detection import CenterFaceDetector, YoloDetector

    try:
        return YoloDetector(input_size=640), CenterFaceDetector(input_size=320)
    except ModelError as err:
        return str(err)


def models() -> tuple[object, object]:
    """(YoloDetector at 640, CenterFaceDetector at 320), loaded once per session."""
    got = _models()
    if isinstance(got, str):
        pytest.fail(f'face models missing: {got}')
    return got


@lru_cache(maxsize=1)
def _attacker() -> object:
    from anon_ros.core.attacks import AttackerUnavailableError, FaceReidentifier

    try:
        return FaceReidentifier()
    except AttackerUnavailableError as err:
        return str(err)


def attacker() -> object:
    """The dlib re-identification attacker (fails the test with the packages to install when missing)."""
    got = _attacker()
    if isinstance(got, str):
        pytest.fail(got)
    return got
