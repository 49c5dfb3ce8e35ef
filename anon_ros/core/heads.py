"""Head regions from person detections (pose keypoints, person-box fallback) and backup face detections.

Sizes are estimated from several body cues and the largest plausible one wins, because an undersized head box
would leave part of a face raw while an oversized one only masks a little more background.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

from anon_ros.core.detection import (
    LEFT_EAR,
    LEFT_EYE,
    LEFT_SHOULDER,
    NOSE,
    RIGHT_EAR,
    RIGHT_EYE,
    RIGHT_SHOULDER,
    Detections,
    FaceDetections,
)
from anon_ros.core.errors import InputError


class HeadSource(enum.IntEnum):
    """Where a head box came from."""

    KEYPOINTS = 0  # pose keypoints of a person
    PERSON_BOX = 1  # top of a person box (no usable face keypoints: back view, tiny person, detect-only model)
    FACE = 2  # backup face detector
    TRACK = 3  # carried by the tracker through frames without a matching detection


@dataclass(frozen=True)
class HeadBoxes:
    """Head regions: boxes (N,4) xyxy px (float32), scores (N,), sources (N,) HeadSource values."""

    boxes: np.ndarray
    scores: np.ndarray
    sources: np.ndarray

    def __post_init__(self) -> None:
        if self.boxes.ndim != 2 or self.boxes.shape[1] != 4:
            msg = f'head boxes must have shape (N, 4), got {self.boxes.shape}'
            raise InputError(msg)
        n = self.boxes.shape[0]
        if self.scores.shape != (n,) or self.sources.shape != (n,):
            msg = f'scores and sources must have shape ({n},), got {self.scores.shape} and {self.sources.shape}'
            raise InputError(msg)
        if n and not np.all(np.isfinite(self.boxes)):
            msg = 'head boxes must be finite numbers'
            raise InputError(msg)

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    @staticmethod
    def empty() -> HeadBoxes:
        return HeadBoxes(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), np.zeros((0,), np.int8))

    @staticmethod
    def concat(parts: list[HeadBoxes]) -> HeadBoxes:
        parts = [p for p in parts if len(p)]
        if not parts:
            return HeadBoxes.empty()
        return HeadBoxes(
            np.concatenate([p.boxes for p in parts]).astype(np.float32),
            np.concatenate([p.scores for p in parts]).astype(np.float32),
            np.concatenate([p.sources for p in parts]).astype(np.int8),
        )


@dataclass(frozen=True)
class HeadConfig:
    """How head boxes are derived. margin scales every box about its centre (1.0 = the estimated head)."""

    keypoint_conf: float = 0.35
    margin: float = 1.2
    min_size_px: float = 8.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.keypoint_conf <= 1.0:
            msg = f'keypoint_conf must be in [0, 1], got {self.keypoint_conf}'
            raise InputError(msg)
        if self.margin < 1.0:
            msg = f'margin must be >= 1.0 (never shrink a head), got {self.margin}'
            raise InputError(msg)
        if self.min_size_px <= 0:
            msg = f'min_size_px must be > 0, got {self.min_size_px}'
            raise InputError(msg)


# Head proportions relative to head width w (height ~1.3 w with hair). The head's centre is at about the mean height
# of the face keypoints (eyes, nose, ears): measured over the walking-people stream, the true head's centre lies
# 0.02 w above it (median), its top 0.5-0.6 w above it.
_HEIGHT_RATIO = 1.3
_EYES_FROM_TOP = 0.65
# Head relative to a face box (brows to chin): width, height, and how far its centre is above the face's.
_FACE_TO_HEAD_W = 1.3
_FACE_TO_HEAD_H = 1.75
_FACE_CENTRE_UP = 0.15
_CHIN_BELOW_SHOULDERS = 0.10  # x head width; the lowest GT head bottom seen was ~0.3 face heights above it


def _head_from_keypoints(kp: np.ndarray, box: np.ndarray, conf: float) -> tuple[float, float, float] | None:
    """(cx, cy, width) of the head from COCO keypoints, or None when no face keypoint is confident."""
    vis = kp[:, 2] >= conf
    face_idx = [i for i in (NOSE, LEFT_EYE, RIGHT_EYE, LEFT_EAR, RIGHT_EAR) if vis[i]]
    if not face_idx:
        return None
    pts = kp[face_idx, :2]

    def dist(a: int, b: int) -> float:
        return float(np.hypot(*(kp[a, :2] - kp[b, :2]))) if vis[a] and vis[b] else 0.0

    # Several width cues (each shrinks in some pose, so take the largest): ear span, eye span, nose-eye,
    # shoulder span, nose-to-shoulder drop, spread of the face keypoints, and a floor from the person box.
    cues = [
        1.2 * dist(LEFT_EAR, RIGHT_EAR),
        2.6 * dist(LEFT_EYE, RIGHT_EYE),
        3.2 * max(dist(NOSE, LEFT_EYE), dist(NOSE, RIGHT_EYE)),
        3.0 * max(dist(NOSE, LEFT_EAR), dist(NOSE, RIGHT_EAR)),
        0.5 * dist(LEFT_SHOULDER, RIGHT_SHOULDER),
        1.3 * float(np.ptp(pts[:, 0])) if len(pts) > 1 else 0.0,
    ]
    if vis[LEFT_SHOULDER] and vis[RIGHT_SHOULDER] and vis[NOSE]:
        mid = (kp[LEFT_SHOULDER, :2] + kp[RIGHT_SHOULDER, :2]) / 2
        cues.append(0.8 * abs(float(mid[1] - kp[NOSE, 1])))
    bw, bh = float(box[2] - box[0]), float(box[3] - box[1])
    cues.append(0.18 * min(bw, bh))  # a head is rarely under a fifth of the person's narrower side
    width = max(cues)
    width = min(width, max(bw, 1.0) * 1.1)  # and never much wider than the person
    cx = float(pts[:, 0].mean())
    eyes_y = float(pts[:, 1].mean())
    cy = eyes_y - (_EYES_FROM_TOP - _HEIGHT_RATIO / 2) * width
    return cx, cy, width


def _chin_floor(kp: np.ndarray, width: float, conf: float) -> float | None:
    """Lowest y a head can reach in an upright person: a little below the shoulder line (the chin stays above it,
    even when looking down). None unless nose, eyes and both shoulders are confident and clearly upright."""
    vis = kp[:, 2] >= conf
    if not (vis[NOSE] and vis[LEFT_SHOULDER] and vis[RIGHT_SHOULDER] and (vis[LEFT_EYE] or vis[RIGHT_EYE])):
        return None
    sl, sr = kp[LEFT_SHOULDER, :2], kp[RIGHT_SHOULDER, :2]
    span = float(np.hypot(*(sl - sr)))
    mid_y = float(sl[1] + sr[1]) / 2
    eyes_y = float(np.mean([kp[j, 1] for j in (LEFT_EYE, RIGHT_EYE) if vis[j]]))
    # Upright: shoulders level (tilt < ~20 deg) and well below the nose; else no limit.
    tilted = abs(float(sl[1] - sr[1])) > 0.35 * max(span, 1.0)
    if tilted or mid_y - float(kp[NOSE, 1]) < 0.25 * width or kp[NOSE, 1] < eyes_y - 0.1 * width:
        return None
    return mid_y + _CHIN_BELOW_SHOULDERS * width


def _head_from_person_box(box: np.ndarray) -> tuple[float, float, float]:
    """(cx, cy, width) of a head at the top of a person box: used when no face keypoint is confident."""
    bw, bh = float(box[2] - box[0]), float(box[3] - box[1])
    width = min(bw, max(0.45 * bw, bh / 5.0))
    cx = float(box[0] + box[2]) / 2
    cy = float(box[1]) + _HEIGHT_RATIO * width / 2
    return cx, cy, width


def heads_from_people(people: Detections, image_hw: tuple[int, int], cfg: HeadConfig) -> HeadBoxes:
    """One head box per detected person: from face keypoints when confident, else from the top of the box."""
    n = len(people)
    if n == 0:
        return HeadBoxes.empty()
    boxes = np.zeros((n, 4), np.float32)
    sources = np.zeros((n,), np.int8)
    has_kp = people.keypoints.shape[1] >= 7
    for i in range(n):
        est = _head_from_keypoints(people.keypoints[i], people.boxes[i], cfg.keypoint_conf) if has_kp else None
        if est is None:
            est = _head_from_person_box(people.boxes[i])
            sources[i] = HeadSource.PERSON_BOX
        else:
            sources[i] = HeadSource.KEYPOINTS
        cx, cy, w = est
        boxes[i] = _box(cx, cy, w, _HEIGHT_RATIO * w, cfg)
        if has_kp and sources[i] == HeadSource.KEYPOINTS:
            floor = _chin_floor(people.keypoints[i], w, cfg.keypoint_conf)
            if floor is not None and floor > boxes[i, 1]:
                boxes[i, 3] = min(boxes[i, 3], floor)
    return HeadBoxes(clip_boxes(boxes, image_hw), people.scores.astype(np.float32), sources)


def heads_from_faces(faces: FaceDetections, image_hw: tuple[int, int], cfg: HeadConfig) -> HeadBoxes:
    """Head boxes around backup face detections (a face box covers brows to chin: add hair, ears and chin)."""
    n = len(faces)
    if n == 0:
        return HeadBoxes.empty()
    fw = faces.boxes[:, 2] - faces.boxes[:, 0]
    fh = faces.boxes[:, 3] - faces.boxes[:, 1]
    # The head with its hair spans ~1.45 face widths and ~1.9 face heights, centred ~0.15 face heights above the
    # face's centre (hair above the brows, the chin just below the box); the estimate is that, a little generous.
    w = np.maximum(fw * _FACE_TO_HEAD_W, fh * 1.05)
    h = np.maximum(_HEIGHT_RATIO * w, fh * _FACE_TO_HEAD_H)
    cx = (faces.boxes[:, 0] + faces.boxes[:, 2]) / 2
    cy = (faces.boxes[:, 1] + faces.boxes[:, 3]) / 2 - _FACE_CENTRE_UP * fh
    boxes = np.stack([_box(float(cx[i]), float(cy[i]), float(w[i]), float(h[i]), cfg) for i in range(n)])
    return HeadBoxes(
        clip_boxes(boxes.astype(np.float32), image_hw), faces.scores.astype(np.float32), np.full((n,), HeadSource.FACE, np.int8)
    )


def _box(cx: float, cy: float, w: float, h: float, cfg: HeadConfig) -> np.ndarray:
    w = max(w, cfg.min_size_px) * cfg.margin
    h = max(h, cfg.min_size_px) * cfg.margin
    return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], np.float32)


def clip_boxes(boxes: np.ndarray, image_hw: tuple[int, int]) -> np.ndarray:
    """Clip xyxy boxes to the image."""
    h, w = image_hw
    out = boxes.copy()
    out[:, 0::2] = out[:, 0::2].clip(0, w)
    out[:, 1::2] = out[:, 1::2].clip(0, h)
    return out


def _intersections(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairwise intersection areas of (N,4) and (M,4) xyxy boxes, and the areas of a and b."""
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = (x2 - x1).clip(0) * (y2 - y1).clip(0)
    return inter, (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]), (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of (N,4) and (M,4) xyxy boxes."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), np.float32)
    inter, area_a, area_b = _intersections(a, b)
    return (inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-6)).astype(np.float32)


def box_overlap_min(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise intersection over the smaller box's area (1.0 when one box holds the other)."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), np.float32)
    inter, area_a, area_b = _intersections(a, b)
    return (inter / np.maximum(np.minimum(area_a[:, None], area_b[None, :]), 1e-6)).astype(np.float32)


def box_inside_fraction(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise fraction of each box of ``a`` that lies inside each box of ``b``."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), np.float32)
    inter, area_a, _ = _intersections(a, b)
    return (inter / np.maximum(area_a[:, None], 1e-6)).astype(np.float32)


def same_head(a: np.ndarray, b: np.ndarray, overlap: float = 0.6, centre_tol: float = 0.3) -> np.ndarray:
    """Pairwise: boxes (N,4) and (M,4) that are one head: the smaller is mostly inside the other, and the centres
    are within ``centre_tol`` of the smaller box's width and height of each other."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), bool)
    acx, acy = (a[:, 0] + a[:, 2]) / 2, (a[:, 1] + a[:, 3]) / 2
    bcx, bcy = (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2
    aw, ah, bw, bh = a[:, 2] - a[:, 0], a[:, 3] - a[:, 1], b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    near = (np.abs(acx[:, None] - bcx[None]) <= centre_tol * np.minimum(aw[:, None], bw[None])) & (
        np.abs(acy[:, None] - bcy[None]) <= centre_tol * np.minimum(ah[:, None], bh[None])
    )
    return near & (box_overlap_min(a, b) >= overlap)


def merge_heads(heads: HeadBoxes, overlap: float = 0.6, centre_tol: float = 0.3) -> HeadBoxes:
    """Merge heads of one person (pose head + backup face, duplicate detections) into their union box.

    Two boxes are one head when they mostly cover each other *and* their centres are close: within ``centre_tol`` of
    the smaller box's width and height. Overlap alone is not enough: a far head seen beside a near one often lies
    inside the near head's box, and their union would get one depth band (the near head's), which drops the far
    head's pixels, and one ellipse, which cuts its corners.
    """
    n = len(heads)
    if n < 2:
        return heads
    same = same_head(heads.boxes, heads.boxes, overlap, centre_tol)
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(n):
        for j in range(i + 1, n):
            if same[i, j]:
                parent[find(j)] = find(i)
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(find(i), []).append(i)
    boxes, scores, sources = [], [], []
    for members in groups.values():
        b = heads.boxes[members]
        boxes.append([b[:, 0].min(), b[:, 1].min(), b[:, 2].max(), b[:, 3].max()])
        best = members[int(np.argmax(heads.scores[members]))]
        scores.append(heads.scores[best])
        sources.append(heads.sources[members].min())  # prefer the keypoint source for reporting
    return HeadBoxes(np.asarray(boxes, np.float32), np.asarray(scores, np.float32), np.asarray(sources, np.int8))
