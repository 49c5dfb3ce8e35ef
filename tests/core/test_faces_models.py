"""Model lookup errors, and the real detectors on real photos (needs scripts/build_models.sh)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from face_data import models, sample

from anon_ros.core.detection import YoloDetector
from anon_ros.core.errors import InputError, ModelError
from anon_ros.core.models import ModelNotFoundError, resolve_model


def test_lookup_order_explicit_then_env_then_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env_dir, cache = tmp_path / 'env', tmp_path / 'cache'
    (cache / 'models').mkdir(parents=True)
    env_dir.mkdir()
    monkeypatch.setenv('ANON_ROS_CACHE', str(cache))
    monkeypatch.delenv('ANON_ROS_MODEL_DIR', raising=False)
    (cache / 'models' / 'm-abc.onnx').write_bytes(b'x')
    assert resolve_model(None, 'm') == cache / 'models' / 'm-abc.onnx'
    monkeypatch.setenv('ANON_ROS_MODEL_DIR', str(env_dir))
    (env_dir / 'm.onnx').write_bytes(b'x')
    assert resolve_model(None, 'm') == env_dir / 'm.onnx'
    explicit = tmp_path / 'mine.onnx'
    explicit.write_bytes(b'x')
    assert resolve_model(explicit, 'm') == explicit
    # A .pt is never loaded: its export is looked up by the checkpoint's stem.
    (env_dir / 'custom-123.onnx').write_bytes(b'x')
    assert resolve_model(tmp_path / 'custom.pt', 'm') == env_dir / 'custom-123.onnx'


def test_missing_models_say_which_file_and_how_to_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv('ANON_ROS_CACHE', str(tmp_path))
    monkeypatch.delenv('ANON_ROS_MODEL_DIR', raising=False)
    with pytest.raises(ModelNotFoundError, match=r'yolo11n-pose.*build_models\.sh'):
        resolve_model(None, 'yolo11n-pose')
    with pytest.raises(ModelNotFoundError, match=r'nope\.onnx does not exist.*build_models'):
        resolve_model(tmp_path / 'nope.onnx', 'x')
    with pytest.raises(ModelNotFoundError, match=r'scripts/build_models\.sh .*best\.pt'):
        resolve_model(tmp_path / 'best.pt', 'x')
    with pytest.raises(ModelError, match='must be an .onnx'):
        resolve_model(tmp_path / 'model.tflite', 'x')


def test_corrupt_model_is_a_model_error(tmp_path: Path) -> None:
    bad = tmp_path / 'bad.onnx'
    bad.write_bytes(b'not a model')
    with pytest.raises(ModelError, match='cannot load ONNX model'):
        YoloDetector(bad)


def test_wrong_kind_of_model_is_rejected() -> None:
    _, face = models()
    with pytest.raises(ModelError, match='not an Ultralytics YOLO'):
        YoloDetector(face.path)  # type: ignore[attr-defined]


@pytest.mark.parametrize(('name', 'people'), [('bus', 4), ('zidane', 2), ('astronaut', 1), ('grace_hopper', 1)])
def test_detectors_on_real_photos(name: str, people: int) -> None:
    yolo, face = models()
    img = sample(name)
    dets = yolo(img)  # type: ignore[operator]
    assert len(dets) >= people - (1 if people > 2 else 0)
    assert dets.keypoints.shape[1:] == (17, 3)
    assert (dets.boxes[:, 2] > dets.boxes[:, 0]).all()
    faces = face(img)  # type: ignore[operator]
    assert faces.landmarks.shape == (len(faces), 5, 2)


def test_no_people_is_empty() -> None:
    yolo, face = models()
    sky = np.full((360, 640, 3), (120, 160, 220), np.uint8)
    assert len(yolo(sky)) == 0 and len(face(sky)) == 0  # type: ignore[operator]
    with pytest.raises(InputError, match='HxWx3 uint8'):
        yolo(np.zeros((10, 10), np.uint8))  # type: ignore[operator]
    with pytest.raises(InputError, match='non-empty'):
        yolo(np.zeros((0, 10, 3), np.uint8))  # type: ignore[operator]
