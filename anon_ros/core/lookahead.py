"""Face anonymization of recorded streams (bags, video files): detections from before AND after each frame.

Live, a frame between two detections has only the past: a head that enters or reappears after the last detection
shows raw until the next one. Offline the next detection can be waited for. :class:`LookaheadFaceAnonymizer` detects
on every ``detect_every``-th frame (a keyframe) and holds the frames in between until the following keyframe is
detected. A frame ``d`` frames before keyframe ``k`` is anonymized with

* the tracked heads predicted forward from the earlier keyframes (as in the live pipeline), and
* the heads measured at ``k``, moved back ``d`` frames by their tracked velocity and grown by the tracker's
  uncertainty over ``d`` frames (a head first seen at ``k`` grows fastest), where the forward prediction does not
  already cover them; so a head entering or reappearing between keyframes is covered from the frame it may appear
  in.

The detectors run in a worker thread (onnxruntime releases the GIL) up to ``max_pending_keyframes`` keyframes ahead
of the frames being anonymized, so decoding, masking and writing overlap with detection. Results come out in input
order, at most about ``detect_every x (max_pending_keyframes + 1)`` frames late; :meth:`flush` detects the last frame
too and returns the rest.

Fails closed: a frame that cannot be read (``rgb=None``), checked, or anonymized, and every frame whose keyframe
detection failed, comes out with ``failed=True`` and an obscured image, in its place in the order.
"""

from __future__ import annotations

import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Generic, TypeVar

import numpy as np

from anon_ros.core.depth_mask import DepthEncoding
from anon_ros.core.detection import Detections, FaceDetections, FaceDetector, PersonDetector
from anon_ros.core.errors import InputError
from anon_ros.core.face_pipeline import (
    FaceAnonymizer,
    FaceAnonymizerConfig,
    FaceResult,
    failed_result,
    found_heads,
    mask_and_replace,
    prepare_frame,
)
from anon_ros.core.heads import HeadBoxes, box_inside_fraction
from anon_ros.core.tracking import HeadTracker

Tag = TypeVar('Tag')

#: A head found at the next keyframe (grown back to an earlier frame) adds nothing to that frame's forward prediction
#: when this much of it lies inside one predicted box.
COVERED_FRACTION = 0.98


@dataclass
class _Frame(Generic[Tag]):
    tag: Tag
    index: int
    rgb: np.ndarray | None
    depth: np.ndarray | None = None
    enc: DepthEncoding = DepthEncoding.FLOAT32_M
    hw: tuple[int, int] = (0, 0)
    error: str | None = None  # set when the frame could not be read or checked


@dataclass
class _Keyframe:
    index: int
    hw: tuple[int, int]
    detection: Future[tuple[Detections, FaceDetections, float]]


class LookaheadFaceAnonymizer(Generic[Tag]):
    """One recorded camera stream, frames pushed in order with a tag each; ``(tag, FaceResult)`` back in order.

    ``config.detect_every`` sets the keyframe spacing; ``config.async_detection`` is ignored (detection is always in
    the worker here). Frames are kept, not copied, until they come out: do not modify a pushed array.
    """

    def __init__(
        self,
        config: FaceAnonymizerConfig | None = None,
        person_detector: PersonDetector | None = None,
        face_detector: FaceDetector | None = None,
        max_pending_keyframes: int = 2,
        face_every: int = 1,
    ) -> None:
        if max_pending_keyframes < 1 or face_every < 1:
            msg = f'max_pending_keyframes and face_every must be >= 1, got {max_pending_keyframes} and {face_every}'
            raise InputError(msg)
        self.face_every = face_every
        self._keyframes = 0
        cfg = replace(config or FaceAnonymizerConfig(), async_detection=False)
        # The live anonymizer loads (and owns) the detectors; only they and the config are used from it.
        self._models = FaceAnonymizer(cfg, person_detector, face_detector)
        self.config = cfg
        self.max_pending_keyframes = max_pending_keyframes
        self._tracker = HeadTracker(cfg.tracker)
        self._pool = ThreadPoolExecutor(1, thread_name_prefix='face_detection')
        self._frames: deque[_Frame[Tag]] = deque()
        self._keys: deque[_Keyframe] = deque()
        self._next_index = 0
        self._segment_start = 0  # index of the first frame since the start or the last change of resolution
        self._hw: tuple[int, int] | None = None

    def push(
        self,
        tag: Tag,
        rgb: np.ndarray | None,
        depth: np.ndarray | None = None,
        depth_encoding: str | DepthEncoding = DepthEncoding.FLOAT32_M,
    ) -> list[tuple[Tag, FaceResult]]:
        """Add the next frame (``rgb=None``: it could not be read; it comes out failed) and return the frames done."""
        frame: _Frame[Tag] = _Frame(tag, self._next_index, rgb)
        self._next_index += 1
        out: list[tuple[Tag, FaceResult]] = []
        try:
            if rgb is None:
                raise InputError('the frame could not be read')
            frame.hw, frame.depth, frame.enc = prepare_frame(rgb, depth, depth_encoding)
        except Exception as err:  # noqa: BLE001 - fails closed: the frame keeps its place and comes out obscured
            frame.error = f'{type(err).__name__}: {err}'
        if frame.error is None and frame.hw != self._hw:
            # A new resolution: finish the old segment with what it has (its last frame becomes a keyframe) and
            # start tracking afresh.
            out += self._finish_segment()
            self._hw = frame.hw
            self._segment_start = frame.index
        self._frames.append(frame)
        if frame.error is None and (frame.index - self._segment_start) % self.config.detect_every == 0:
            self._submit(frame)
        out += self._drain(final=False)
        return out

    def flush(self) -> list[tuple[Tag, FaceResult]]:
        """Detect on the last frame if it is not a keyframe and return every frame still held."""
        return self._finish_segment()

    def close(self) -> None:
        """Stop the detection worker; frames still held are dropped (call :meth:`flush` first to get them)."""
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> LookaheadFaceAnonymizer[Tag]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def pending(self) -> int:
        """Frames pushed but not yet returned."""
        return len(self._frames)

    def _finish_segment(self) -> list[tuple[Tag, FaceResult]]:
        last = next((f for f in reversed(self._frames) if f.error is None), None)
        if last is not None and (not self._keys or self._keys[-1].index < last.index):
            self._submit(last)
        out = self._drain(final=True)
        self._tracker.reset()
        self._keyframes = 0
        return out

    def _submit(self, frame: _Frame[Tag]) -> None:
        assert frame.rgb is not None
        # The face detector on every face_every-th keyframe (and the first): a frame between keyframes sees the
        # faces found before and after it, so the backup detector's cost can be spread.
        with_faces = self._keyframes % self.face_every == 0
        self._keyframes += 1
        self._keys.append(_Keyframe(frame.index, frame.hw, self._pool.submit(self._detect, frame.rgb, with_faces)))

    def _detect(self, rgb: np.ndarray, with_faces: bool) -> tuple[Detections, FaceDetections, float]:
        t0 = time.perf_counter()
        people = self._models.person_detector(rgb)
        face_detector = self._models.face_detector
        faces = face_detector(rgb) if face_detector is not None and with_faces else FaceDetections.empty()
        return people, faces, (time.perf_counter() - t0) * 1e3

    def _drain(self, final: bool) -> list[tuple[Tag, FaceResult]]:
        """Anonymize the frames up to every finished keyframe (waiting when too many keyframes are pending)."""
        out: list[tuple[Tag, FaceResult]] = []
        while self._keys and (final or len(self._keys) > self.max_pending_keyframes or self._keys[0].detection.done()):
            key = self._keys.popleft()
            window: list[_Frame[Tag]] = []
            while self._frames and self._frames[0].index <= key.index:
                window.append(self._frames.popleft())
            out += self._anonymize_window(window, key)
        if final:  # frames after the last readable one: nothing to detect on, all failed
            while self._frames:
                f = self._frames.popleft()
                out.append((f.tag, _failed(f)))
        return out

    def _anonymize_window(self, window: list[_Frame[Tag]], key: _Keyframe) -> list[tuple[Tag, FaceResult]]:
        """Frames after the previous keyframe up to and including ``key``."""
        try:
            people, faces, det_ms = key.detection.result()
        except Exception as err:  # noqa: BLE001 - every frame that needed this detection fails closed
            self._tracker.reset()
            error = f'detection failed: {type(err).__name__}: {err}'
            return [(f.tag, _failed(f, error)) for f in window]
        hw = key.hw
        cfg = self.config
        found = found_heads(people, faces, hw, cfg.heads)
        # Forward: the tracks predicted to each frame of the window (the last prediction is the keyframe's).
        forward = [self._tracker.predict(hw) for _ in window]
        at_key = self._tracker.observe(found, hw, age=0)
        out: list[tuple[Tag, FaceResult]] = []
        for i, f in enumerate(window):
            if f.error is not None:
                out.append((f.tag, _failed(f)))
                continue
            before = key.index - f.index
            if before == 0:
                heads, detected = at_key, True
            else:
                backward = _uncovered(self._tracker.backcast(before, hw), forward[i])
                heads, detected = HeadBoxes.concat([forward[i], backward]), False
            out.append((f.tag, self._anonymize(f, heads, people if detected else None, faces if detected else None,
                                              det_ms)))
        return out

    def _anonymize(self, f: _Frame[Tag], heads: HeadBoxes, people: Detections | None, faces: FaceDetections | None,
                   det_ms: float) -> FaceResult:
        assert f.rgb is not None
        timings: dict[str, float] = {}
        try:
            image, mask = mask_and_replace(f.rgb, f.depth, f.enc, f.hw, heads, self.config, timings)
        except Exception as err:  # noqa: BLE001 - fails closed, like the live pipeline
            return _failed(f, f'{type(err).__name__}: {err}')
        if people is not None:
            timings['detection'] = det_ms
        return FaceResult(
            image, mask, heads, people if people is not None else Detections.empty(),
            faces if faces is not None else FaceDetections.empty(), detected=people is not None, timings_ms=timings,
        )


def _uncovered(heads: HeadBoxes, by: HeadBoxes) -> HeadBoxes:
    """The boxes of ``heads`` that do not lie (almost) wholly inside one box of ``by``."""
    if not len(heads) or not len(by):
        return heads
    keep = box_inside_fraction(heads.boxes, by.boxes).max(axis=1) < COVERED_FRACTION
    return HeadBoxes(heads.boxes[keep], heads.scores[keep], heads.sources[keep])


def _failed(f: _Frame[Tag], error: str | None = None) -> FaceResult:
    return failed_result(f.rgb, error or f.error or 'failed')
