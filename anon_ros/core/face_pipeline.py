"""FaceAnonymizer: RGB(-D) frame in, anonymized frame + masks + detections out. No ROS.

Per frame: (every ``detect_every`` frames) YOLO pose -> head boxes, plus CenterFace for close or partly visible faces
-> merged heads -> tracker (carries heads between detections and over misses) -> depth-band mask inside each head
box (whole boxes without depth) -> ensemble on the masked pixels. Any exception yields a fully obscured frame
(``FailMode.OBSCURE_FRAME``) unless the caller asked for ``FailMode.RAISE``; raw pixels of a face are never returned.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from anon_ros.core.depth_mask import DepthEncoding, DepthMaskConfig, align_depth, check_depth, head_masks
from anon_ros.core.detection import (
    CenterFaceDetector,
    Detections,
    FaceDetections,
    FaceDetector,
    PersonDetector,
    YoloDetector,
    check_rgb,
)
from anon_ros.core.ensemble import EnsembleConfig, apply_ensemble, fresh_rng, obscure_frame
from anon_ros.core.errors import InputError
from anon_ros.core.heads import HeadBoxes, HeadConfig, heads_from_faces, heads_from_people, merge_heads
from anon_ros.core.tracking import HeadTracker, TrackerConfig


class FailMode(enum.Enum):
    """What a frame that failed to process becomes."""

    OBSCURE_FRAME = 'obscure_frame'  # the whole frame, heavily resampled
    RAISE = 'raise'  # re-raise (the caller must then drop the frame)


@dataclass(frozen=True)
class FaceAnonymizerConfig:
    """Everything the face pipeline can be told. Model paths: None = the built default in the model cache."""

    pose_model: str | None = None
    face_model: str | None = None
    use_face_detector: bool = True
    detector_size: int = 640
    face_detector_size: int = 320
    person_conf: float = 0.15  # low on purpose: a spurious head costs a little blur, a missed one a face
    face_conf: float = 0.5
    detect_every: int = 3
    threads: int = 2
    heads: HeadConfig = field(default_factory=HeadConfig)
    depth: DepthMaskConfig = field(default_factory=DepthMaskConfig)
    ensemble: EnsembleConfig = field(default_factory=EnsembleConfig)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    on_error: FailMode = FailMode.OBSCURE_FRAME

    def __post_init__(self) -> None:
        if self.detect_every < 1:
            msg = f'detect_every must be >= 1 frame, got {self.detect_every}'
            raise InputError(msg)
        if self.detect_every - 1 > self.tracker.max_age:
            msg = (
                f'tracker.max_age ({self.tracker.max_age}) must cover the frames between detections '
                f'(detect_every - 1 = {self.detect_every - 1}), or heads would drop between detections'
            )
            raise InputError(msg)
        for name in ('detector_size', 'face_detector_size'):
            v = getattr(self, name)
            if v < 32 or v % 32:
                msg = f'{name} must be a positive multiple of 32, got {v}'
                raise InputError(msg)
        for name in ('person_conf', 'face_conf'):
            v = getattr(self, name)
            if not 0.0 < v < 1.0:
                msg = f'{name} must be in (0, 1), got {v}'
                raise InputError(msg)
        if self.threads < 1:
            msg = f'threads must be >= 1, got {self.threads}'
            raise InputError(msg)
        if not isinstance(self.on_error, FailMode):
            msg = f'on_error must be a FailMode, got {self.on_error!r}'
            raise InputError(msg)


@dataclass(frozen=True)
class FaceResult:
    """One processed frame. ``mask`` is what was replaced; ``heads`` the boxes used (tracked, this frame);
    ``people``/``faces`` the raw detections (empty on frames without detection); ``detected`` whether the
    detectors ran; ``failed`` whether the frame was obscured whole because of ``error``; ``timings_ms`` per stage."""

    image: np.ndarray
    mask: np.ndarray
    heads: HeadBoxes
    people: Detections
    faces: FaceDetections
    detected: bool
    failed: bool = False
    error: str | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.image.ndim != 3 or self.mask.shape != self.image.shape[:2]:
            msg = f'mask shape {self.mask.shape} must match image shape {self.image.shape[:2]}'
            raise InputError(msg)


class FaceAnonymizer:
    """Stateful per stream (the tracker): use one instance per camera, frames in order."""

    def __init__(
        self,
        config: FaceAnonymizerConfig | None = None,
        person_detector: PersonDetector | None = None,
        face_detector: FaceDetector | None = None,
    ) -> None:
        self.config = config or FaceAnonymizerConfig()
        cfg = self.config
        # Models are loaded once here (ModelError if missing), never per frame.
        self.person_detector: PersonDetector = person_detector or YoloDetector(
            Path(cfg.pose_model) if cfg.pose_model else None, cfg.detector_size, cfg.person_conf, threads=cfg.threads
        )
        self.face_detector: FaceDetector | None = face_detector
        if self.face_detector is None and cfg.use_face_detector:
            self.face_detector = CenterFaceDetector(
                Path(cfg.face_model) if cfg.face_model else None, cfg.face_detector_size, cfg.face_conf, cfg.threads
            )
        self.tracker = HeadTracker(cfg.tracker)
        self._frame = 0
        self._last_hw: tuple[int, int] | None = None

    def reset(self) -> None:
        """Forget tracks (new stream or a jump in time)."""
        self.tracker.reset()
        self._frame = 0
        self._last_hw = None

    def process(
        self, rgb: np.ndarray, depth: np.ndarray | None = None, depth_encoding: str | DepthEncoding = DepthEncoding.FLOAT32_M
    ) -> FaceResult:
        """Anonymize one frame. depth: HxW 32FC1 metres or 16UC1 millimetres (any scale of the RGB size), or None."""
        try:
            return self._process(rgb, depth, depth_encoding)
        except Exception as err:
            if self.config.on_error is FailMode.RAISE:
                raise
            if self.config.on_error is FailMode.OBSCURE_FRAME:
                # Tracks may now be wrong; the next frame re-detects from scratch.
                self.reset()
                img = obscure_frame(rgb) if _is_image(rgb) else np.zeros((1, 1, 3), np.uint8)
                return FaceResult(
                    img,
                    np.ones(img.shape[:2], bool),
                    HeadBoxes.empty(),
                    Detections.empty(),
                    FaceDetections.empty(),
                    detected=False,
                    failed=True,
                    error=f'{type(err).__name__}: {err}',
                )
            raise InputError(f'unhandled fail mode {self.config.on_error}') from err

    def _process(self, rgb: np.ndarray, depth: np.ndarray | None, depth_encoding: str | DepthEncoding) -> FaceResult:
        cfg = self.config
        t0 = time.perf_counter()
        timings: dict[str, float] = {}
        check_rgb(rgb)
        hw = (rgb.shape[0], rgb.shape[1])
        if self._last_hw is not None and hw != self._last_hw:
            self.reset()  # a new resolution invalidates every tracked box
        enc = DepthEncoding.parse(depth_encoding)
        if depth is not None:
            depth, enc = check_depth(depth, enc)
            depth = align_depth(depth, hw)
        t1 = time.perf_counter()
        timings['depth_prep'] = (t1 - t0) * 1e3

        # YOLO and CenterFace run on different frames of each detect_every cycle, spreading their cost.
        phase = self._frame % cfg.detect_every
        first = self._last_hw is None
        run_people = phase == 0 or first
        run_faces = self.face_detector is not None and (phase == cfg.detect_every // 2 or first)
        people, faces = Detections.empty(), FaceDetections.empty()
        t2 = t3 = t1
        if run_people:
            people = self.person_detector(rgb)
            t2 = time.perf_counter()
            timings['person_det'] = (t2 - t1) * 1e3
        if run_faces and self.face_detector is not None:
            faces = self.face_detector(rgb)
            t3 = time.perf_counter()
            timings['face_det'] = (t3 - t2) * 1e3
        t3 = time.perf_counter()
        detect = run_people or run_faces
        if detect:
            found = merge_heads(
                HeadBoxes.concat([heads_from_people(people, hw, cfg.heads), heads_from_faces(faces, hw, cfg.heads)])
            )
            heads = self.tracker.update(found, hw)
        else:
            heads = self.tracker.predict(hw)
        t4 = time.perf_counter()
        timings['heads_track'] = (t4 - t3) * 1e3

        mask = head_masks(depth, heads, hw, cfg.depth, enc)
        t5 = time.perf_counter()
        timings['depth_mask'] = (t5 - t4) * 1e3
        image = apply_ensemble(rgb, mask, heads, cfg.ensemble, fresh_rng())
        t6 = time.perf_counter()
        timings['ensemble'] = (t6 - t5) * 1e3
        timings['total'] = (t6 - t0) * 1e3
        self._frame += 1
        self._last_hw = hw
        return FaceResult(image, mask, heads, people, faces, detected=detect, timings_ms=timings)


def _is_image(rgb: object) -> bool:
    return isinstance(rgb, np.ndarray) and rgb.ndim == 3 and rgb.shape[2] == 3 and rgb.shape[0] > 0 and rgb.shape[1] > 0 and rgb.dtype == np.uint8
