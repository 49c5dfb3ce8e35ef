"""Re-identification attacker for evaluating face anonymization (not used at run time).

dlib's ResNet face embedding (``face_recognition_models==0.3.0`` + ``dlib-bin``): two faces are the same person when
their embeddings are closer than 0.6. Only the 5-point landmark predictor and the ResNet model are used (the 68-point
model in that package is licensed for non-commercial use only). The attacker is given the true face box, which is
stronger than having to find the anonymized face first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from anon_ros.core.errors import AnonRosError, InputError

#: dlib's published threshold: embeddings closer than this are the same person.
MATCH_THRESHOLD = 0.6


class AttackerUnavailableError(AnonRosError):
    """dlib or its models are not installed."""


@dataclass(frozen=True)
class FaceMatch:
    """Embedding distance of one face before and after anonymization; matched = identity survived."""

    distance: float
    matched: bool


class FaceReidentifier:
    """dlib ResNet embedding of a face inside a given box."""

    def __init__(self) -> None:
        try:
            import dlib
            import face_recognition_models as frm
        except ImportError as err:
            msg = (
                f'the face re-identification attacker needs PyPI packages dlib-bin and face_recognition_models==0.3.0 '
                f'({err})'
            )
            raise AttackerUnavailableError(msg) from err
        self._dlib: Any = dlib
        self._shape = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
        self._net = dlib.face_recognition_model_v1(frm.face_recognition_model_location())

    def embed(self, rgb: np.ndarray, face_box: np.ndarray | tuple[float, float, float, float]) -> np.ndarray:
        """128-d embedding of the face in ``face_box`` (xyxy px, brows to chin) of an RGB uint8 image."""
        if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
            msg = f'expected an HxWx3 uint8 RGB image, got {rgb.dtype} {rgb.shape}'
            raise InputError(msg)
        x1, y1, x2, y2 = (int(round(float(v))) for v in face_box)
        if x2 <= x1 or y2 <= y1:
            msg = f'face box must have positive size, got {tuple(face_box)}'
            raise InputError(msg)
        img = np.ascontiguousarray(rgb)
        rect = self._dlib.rectangle(x1, y1, x2, y2)
        shape = self._shape(img, rect)
        return np.asarray(self._net.compute_face_descriptor(img, shape), np.float64)

    def compare(
        self, original: np.ndarray, anonymized: np.ndarray, face_box: np.ndarray | tuple[float, float, float, float]
    ) -> FaceMatch:
        """Distance between the face in ``original`` and the same box in ``anonymized``."""
        d = float(np.linalg.norm(self.embed(original, face_box) - self.embed(anonymized, face_box)))
        return FaceMatch(d, d < MATCH_THRESHOLD)
