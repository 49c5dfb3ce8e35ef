"""FaceAnonymizer: RGB(-D) frame in, anonymized frame + masks + detections out. No ROS.

Per frame: (every ``detect_every`` frames) YOLO pose -> head boxes, plus CenterFace for close or partly visible faces
-> merged heads -> tracker (carries heads between detections and over misses) -> depth-band mask inside each head
box (whole boxes without depth) -> ensemble on the masked pixels. Any exception yields a fully obscured frame
(``FailMode.OBSCURE_FRAME``) unless the caller asked for ``FailMode.RAISE``; raw pixels of a face are never returned.

With ``async_detection`` the detectors run in a worker thread (onnxruntime releases the GIL) on the latest frame
while every frame is anonymized at once with the tracked heads; a detection made on frame k is folded into the
tracker as k's measurement and predicted (and grown) to the current frame. The first frame after a reset is
detected synchronously, and a detection older than ``async_max_lag`` frames is waited for, so no frame ever goes
out on stale tracks alone.
"""

from __future__ import annotations

import enum
import threading
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
    async_detection: bool = False  # detectors in a worker thread; every frame anonymized with tracked heads
    async_max_lag: int = 6  # frames a running detection may fall behind before process() waits for it

    def __post_init__(self) -> None:
        self._validate()
        if self.async_max_lag < 1:
            msg = f'async_max_lag must be >= 1 frame, got {self.async_max_lag}'
            raise InputError(msg)
        if self.async_detection and self.async_max_lag + self.detect_every > self.tracker.max_age:
            msg = (
                f'tracker.max_age ({self.tracker.max_age}) must cover async_max_lag + detect_every '
                f'({self.async_max_lag} + {self.detect_every}), or heads would drop while a detection runs'
            )
            raise InputError(msg)

    def _validate(self) -> None:
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
        self._worker: _DetectionWorker | None = None
        if cfg.async_detection:
            self._worker = _DetectionWorker(self.person_detector, self.face_detector)
        self._last_submit = -(10**9)

    def reset(self) -> None:
        """Forget tracks (new stream or a jump in time); a detection still running is discarded."""
        self.tracker.reset()
        self._frame = 0
        self._last_hw = None
        self._last_submit = -(10**9)
        if self._worker is not None:
            self._worker.discard()

    def close(self) -> None:
        """Stop the detection worker (async mode); the anonymizer cannot be used afterwards."""
        if self._worker is not None:
            self._worker.stop()
            self._worker = None

    def __enter__(self) -> FaceAnonymizer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def process(
        self,
        rgb: np.ndarray,
        depth: np.ndarray | None = None,
        depth_encoding: str | DepthEncoding = DepthEncoding.FLOAT32_M,
        frames_elapsed: int = 1,
    ) -> FaceResult:
        """Anonymize one frame. depth: HxW 32FC1 metres or 16UC1 millimetres (any scale of the RGB size), or None.

        ``frames_elapsed``: stream frames since the previous call (> 1 when the caller dropped frames it could not
        process in time). The tracker then predicts, and grows its boxes, over all of them: heads moved further.
        """
        if frames_elapsed < 1:
            msg = f'frames_elapsed must be >= 1, got {frames_elapsed}'
            raise InputError(msg)
        try:
            return self._process(rgb, depth, depth_encoding, frames_elapsed)
        except Exception as err:
            if self.config.on_error is FailMode.RAISE:
                raise
            if self.config.on_error is FailMode.OBSCURE_FRAME:
                # Tracks may now be wrong; the next frame re-detects from scratch.
                self.reset()
                return failed_result(rgb, f'{type(err).__name__}: {err}')
            raise InputError(f'unhandled fail mode {self.config.on_error}') from err

    def _process(
        self, rgb: np.ndarray, depth: np.ndarray | None, depth_encoding: str | DepthEncoding, frames_elapsed: int = 1
    ) -> FaceResult:
        cfg = self.config
        t0 = time.perf_counter()
        timings: dict[str, float] = {}
        hw, depth, enc = prepare_frame(rgb, depth, depth_encoding)
        if self._last_hw is not None and hw != self._last_hw:
            self.reset()  # a new resolution invalidates every tracked box
        t1 = time.perf_counter()
        timings['depth_prep'] = (t1 - t0) * 1e3

        if self._worker is not None and self._last_hw is not None:
            return self._process_async(rgb, depth, enc=enc, hw=hw, t0=t0, timings=timings,
                                       frames_elapsed=frames_elapsed)

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
            found = found_heads(people, faces, hw, cfg.heads)
            heads = self.tracker.update(found, hw, frames_elapsed)
        else:
            for _ in range(frames_elapsed):
                heads = self.tracker.predict(hw)
        t4 = time.perf_counter()
        timings['heads_track'] = (t4 - t3) * 1e3
        if self._worker is not None:
            self._worker.discard()  # first frame of a stream in async mode: nothing older may arrive
        return self._finish(
            rgb, depth, enc=enc, hw=hw, heads=heads, people=people, faces=faces, detect=detect, t0=t0,
            timings=timings,
        )

    def _finish(
        self,
        rgb: np.ndarray,
        depth: np.ndarray | None,
        *,
        enc: DepthEncoding,
        hw: tuple[int, int],
        heads: HeadBoxes,
        people: Detections,
        faces: FaceDetections,
        detect: bool,
        t0: float,
        timings: dict[str, float],
    ) -> FaceResult:
        image, mask = mask_and_replace(rgb, depth, enc, hw, heads, self.config, timings)
        timings['total'] = (time.perf_counter() - t0) * 1e3
        self._frame += 1
        self._last_hw = hw
        return FaceResult(image, mask, heads, people, faces, detected=detect, timings_ms=timings)

    def _process_async(
        self,
        rgb: np.ndarray,
        depth: np.ndarray | None,
        *,
        enc: DepthEncoding,
        hw: tuple[int, int],
        t0: float,
        timings: dict[str, float],
        frames_elapsed: int = 1,
    ) -> FaceResult:
        """Frame ``self._frame``: fold in finished detections (at their own frame), start the next one on this frame
        when the worker is free, and anonymize with the tracks predicted to this frame."""
        cfg = self.config
        worker = self._worker
        assert worker is not None
        # Frames the caller dropped still passed: predict over them, and count them in the detections' ages.
        for _ in range(frames_elapsed - 1):
            self.tracker.predict(hw)
        self._frame += frames_elapsed - 1
        now = self._frame
        t1 = time.perf_counter()
        # Never let a running detection fall more than async_max_lag frames behind: wait for it (back-pressure).
        running = worker.running_frame()
        if running is not None and now - running >= cfg.async_max_lag:
            worker.wait()
        t2 = time.perf_counter()
        timings['det_wait'] = (t2 - t1) * 1e3
        people, faces = Detections.empty(), FaceDetections.empty()
        detect = False
        tracked = False
        for done in worker.take():
            # Both detectors saw the same frame: their heads merge as in a synchronous detection.
            people = done.people if done.people is not None else Detections.empty()
            faces = done.faces if done.faces is not None else FaceDetections.empty()
            found = found_heads(people, faces, hw, cfg.heads)
            timings['person_det'] = done.ms
            if done.faces is not None:
                timings['face_det'] = done.face_ms
            # The detection saw frame done.frame; frames up to now - 1 have been advanced past already.
            age = now - done.frame
            if not tracked:
                self.tracker.predict(hw)  # advance to this frame first
                tracked = True
            self.tracker.observe(found, hw, age)
            timings['det_age_frames'] = float(age)
            detect = True
        heads = self.tracker.current(hw) if tracked else self.tracker.predict(hw)
        if worker.idle() and now - self._last_submit >= cfg.detect_every:
            # Both detectors on one frame per job: every result refreshes every head (alternating them would leave a
            # head that only one of them finds twice as long on predictions).
            worker.submit(rgb, now, face=self.face_detector is not None)
            self._last_submit = now
        t4 = time.perf_counter()
        timings['heads_track'] = (t4 - t2) * 1e3
        return self._finish(
            rgb, depth, enc=enc, hw=hw, heads=heads, people=people, faces=faces, detect=detect, t0=t0,
            timings=timings,
        )


def prepare_frame(
    rgb: np.ndarray, depth: np.ndarray | None, depth_encoding: str | DepthEncoding
) -> tuple[tuple[int, int], np.ndarray | None, DepthEncoding]:
    """Check an RGB frame and its depth; return (height, width), the depth aligned to the RGB size, its encoding."""
    check_rgb(rgb)
    hw = (rgb.shape[0], rgb.shape[1])
    enc = DepthEncoding.parse(depth_encoding)
    if depth is not None:
        depth, enc = check_depth(depth, enc)
        depth = align_depth(depth, hw)
    return hw, depth, enc


def found_heads(people: Detections, faces: FaceDetections, hw: tuple[int, int], cfg: HeadConfig) -> HeadBoxes:
    """The heads of one frame's detections: pose heads and face-detector heads, duplicates merged."""
    return merge_heads(HeadBoxes.concat([heads_from_people(people, hw, cfg), heads_from_faces(faces, hw, cfg)]))


def mask_and_replace(
    rgb: np.ndarray, depth: np.ndarray | None, enc: DepthEncoding, hw: tuple[int, int], heads: HeadBoxes,
    cfg: FaceAnonymizerConfig, timings: dict[str, float],
) -> tuple[np.ndarray, np.ndarray]:
    """The depth-band mask of ``heads`` and the image with the ensemble applied under it (fresh randomness); adds
    ``depth_mask`` and ``ensemble`` ms to ``timings``."""
    t0 = time.perf_counter()
    mask = head_masks(depth, heads, hw, cfg.depth, enc)
    t1 = time.perf_counter()
    image = apply_ensemble(rgb, mask, heads, cfg.ensemble, fresh_rng())
    timings['depth_mask'] = (t1 - t0) * 1e3
    timings['ensemble'] = (time.perf_counter() - t1) * 1e3
    return image, mask


def failed_result(rgb: object, error: str) -> FaceResult:
    """A frame that failed: obscured whole (a 1x1 black image when ``rgb`` is no image), all of it masked."""
    image = obscure_frame(rgb) if _is_image(rgb) else np.zeros((1, 1, 3), np.uint8)  # type: ignore[arg-type]
    return FaceResult(image, np.ones(image.shape[:2], bool), HeadBoxes.empty(), Detections.empty(),
                      FaceDetections.empty(), detected=False, failed=True, error=error)


def _is_image(rgb: object) -> bool:
    return (isinstance(rgb, np.ndarray) and rgb.ndim == 3 and rgb.shape[2] == 3 and rgb.shape[0] > 0
            and rgb.shape[1] > 0 and rgb.dtype == np.uint8)


@dataclass
class _Done:
    frame: int
    people: Detections | None
    faces: FaceDetections | None
    ms: float = 0.0  # how long the person detector ran (in the worker, beside the frames processed meanwhile)
    face_ms: float = 0.0


class _DetectionWorker:
    """One background thread detecting (YOLO, then CenterFace) on the latest submitted frame, one frame at a time.

    Results come back in frame order. An exception in a detector is re-raised by the next ``take`` (the frame then
    fails closed). ``discard`` drops the running job's result (after a reset).
    """

    def __init__(self, people: PersonDetector, faces: FaceDetector | None) -> None:
        self._people, self._faces = people, faces
        self._cv = threading.Condition()
        self._job: tuple[np.ndarray, int, bool, int] | None = None  # frame copy, frame index, face?, generation
        self._busy_frame: int | None = None
        self._done: list[_Done] = []
        self._error: BaseException | None = None
        self._gen = 0
        self._stop = False
        self._thread = threading.Thread(target=self._run, name='face_detection', daemon=True)
        self._thread.start()

    def submit(self, rgb: np.ndarray, frame: int, face: bool) -> None:
        with self._cv:
            # A copy: the caller may reuse its buffer; the detectors only need it until they have resized it.
            self._job = (rgb.copy(), frame, face, self._gen)
            self._busy_frame = frame
            self._cv.notify_all()

    def idle(self) -> bool:
        with self._cv:
            return self._busy_frame is None

    def running_frame(self) -> int | None:
        with self._cv:
            return self._busy_frame

    def wait(self) -> None:
        with self._cv:
            while self._busy_frame is not None and not self._stop:
                self._cv.wait()

    def take(self) -> list[_Done]:
        with self._cv:
            if self._error is not None:
                err, self._error = self._error, None
                raise err
            done, self._done = self._done, []
            return done

    def discard(self) -> None:
        """Wait for a running job to end and drop every result (the stream restarts)."""
        with self._cv:
            self._gen += 1
            while self._busy_frame is not None and not self._stop:
                self._cv.wait()
            self._done.clear()
            self._error = None

    def stop(self) -> None:
        with self._cv:
            self._stop = True
            self._cv.notify_all()
        self._thread.join(timeout=5.0)

    def _run(self) -> None:
        while True:
            with self._cv:
                while self._job is None and not self._stop:
                    self._cv.wait()
                if self._stop:
                    return
                assert self._job is not None
                rgb, frame, face, gen = self._job
                self._job = None
            done: _Done | None = None
            error: BaseException | None = None
            t0 = time.perf_counter()
            try:
                done = _Done(frame, self._people(rgb), None)
                t1 = time.perf_counter()
                done.ms = (t1 - t0) * 1e3
                if face and self._faces is not None:
                    done.faces = self._faces(rgb)
                    done.face_ms = (time.perf_counter() - t1) * 1e3
            except Exception as err:  # noqa: BLE001 - handed to the caller's thread, which fails the frame closed
                error = err
            with self._cv:
                if gen == self._gen:
                    if error is not None:
                        self._error = error
                    elif done is not None:
                        self._done.append(done)
                self._busy_frame = None
                self._cv.notify_all()
