"""Head tracking across frames, so a face never shows raw between detections.

Detection may run only every k frames and may miss a head for a few frames. Each track keeps its last box,
predicts it forward with a smoothed velocity, and grows it with the time since it was last seen and with its speed
(a fast head is where the uncertainty is). Tracks live ``max_age`` frames without a match, so a miss never makes
the mask flicker off. New detections are shown at once (no confirmation delay: privacy first).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from anon_ros.core.errors import InputError
from anon_ros.core.heads import HeadBoxes, HeadSource, clip_boxes, same_head


@dataclass(frozen=True)
class TrackerConfig:
    """max_age: frames a track survives without a matching detection. velocity_alpha: smoothing of velocity
    (1 = last measurement only). grow_per_frame: box growth per unseen frame, fraction of its size. speed_gain:
    extra growth per frame, in units of the head's own speed plus its last change of velocity. new_track_grow: growth
    per frame (fraction of size) of a track whose velocity is still unknown (seen once): it may be a fast head.
    max_speed: the fastest a head moves, px/frame per px of its size: measured velocities and velocity changes are
    clipped to it, and no track grows faster than one whose velocity is unknown, so one bad measurement (a box cut
    by the border, a detection of another head) cannot blow a box up. match_size_ratio: a detection continues a
    track only if their measured sizes (geometric mean of the sides) differ by at most this factor, and match_dist,
    match_dist_per_frame: only if its centre is within (match_dist + match_dist_per_frame x frames since the track
    was measured) x the larger size of the track's predicted centre; so a neighbour's box (a near person's big head
    next to a far one's small head) never takes over a track. Among those, the nearest (relative to the size) wins,
    never the largest overlap with a grown box. An unmatched detection starts its own track; an unmatched track
    that is the same head as a track just measured (one head found twice, by two detectors) is dropped."""

    max_age: int = 15
    velocity_alpha: float = 0.6
    grow_per_frame: float = 0.03
    speed_gain: float = 1.0
    new_track_grow: float = 0.35
    max_speed: float = 0.5
    match_size_ratio: float = 1.6
    match_dist: float = 0.6
    match_dist_per_frame: float = 0.75

    def __post_init__(self) -> None:
        if self.max_age < 0:
            msg = f'max_age must be >= 0 frames, got {self.max_age}'
            raise InputError(msg)
        if not 0.0 < self.velocity_alpha <= 1.0:
            msg = f'velocity_alpha must be in (0, 1], got {self.velocity_alpha}'
            raise InputError(msg)
        if self.grow_per_frame < 0 or self.speed_gain < 0 or self.new_track_grow < 0:
            msg = 'grow_per_frame, speed_gain and new_track_grow must be >= 0'
            msg += f', got {self.grow_per_frame}, {self.speed_gain} and {self.new_track_grow}'
            raise InputError(msg)
        if self.max_speed <= 0:
            msg = f'max_speed must be > 0 (px/frame per px of head size), got {self.max_speed}'
            raise InputError(msg)
        if self.match_size_ratio < 1.0 or self.match_dist <= 0 or self.match_dist_per_frame < 0:
            msg = 'match_size_ratio must be >= 1, match_dist > 0 and match_dist_per_frame >= 0'
            msg += f', got {self.match_size_ratio}, {self.match_dist} and {self.match_dist_per_frame}'
            raise InputError(msg)


@dataclass
class _Track:
    box: np.ndarray  # last measured box (xyxy)
    velocity: np.ndarray  # px/frame of (cx, cy, w, h)
    score: float
    source: int
    surprise: float = 0.0  # px/frame: how much the last measured velocity differed from the prediction
    unseen: int = 0  # frames since the last match
    hits: int = 1
    ident: int = 0
    at_border: bool = False  # last measured box touched the image border: cut, so its centre and speed are not
    # the head's (a head re-entering or turning there moves unlike its track)


def _cxcywh(b: np.ndarray) -> np.ndarray:
    return np.array([(b[0] + b[2]) / 2, (b[1] + b[3]) / 2, b[2] - b[0], b[3] - b[1]], np.float32)


def _xyxy(c: np.ndarray) -> np.ndarray:
    return np.array([c[0] - c[2] / 2, c[1] - c[3] / 2, c[0] + c[2] / 2, c[1] + c[3] / 2], np.float32)


def _at_border(b: np.ndarray, image_hw: tuple[int, int], margin: float = 1.0) -> bool:
    h, w = image_hw
    return bool(b[0] <= margin or b[1] <= margin or b[2] >= w - margin or b[3] >= h - margin)


@dataclass
class HeadTracker:
    """Carries head boxes between detections. Call ``update`` on frames with detections, ``predict`` on others;
    both return the boxes to anonymize in the current frame."""

    cfg: TrackerConfig = field(default_factory=TrackerConfig)
    _tracks: list[_Track] = field(default_factory=list)
    _next_id: int = 0

    def reset(self) -> None:
        self._tracks.clear()

    def __len__(self) -> int:
        return len(self._tracks)

    def _predicted(self, t: _Track, shift: int = 0, grown: bool = True) -> np.ndarray:
        """Where the track is now (``shift`` frames from now): last box moved by velocity x unseen frames, grown by
        the uncertainty (unless ``grown`` is False: the box the head itself would have there)."""
        c = _cxcywh(t.box)
        k = float(max(t.unseen + shift, 0))
        c[:2] += t.velocity[:2] * k
        c[2:] = np.maximum(c[2:] + np.maximum(t.velocity[2:], 0) * k, c[2:])  # never shrink on the way
        if not grown:
            return _xyxy(c)
        c[2:] += 2 * k * self._growth_rate(t, float(max(c[2], c[3])))
        return _xyxy(c)

    def _growth_rate(self, t: _Track, size: float) -> float:
        """How much a box of ``size`` px grows per side per frame in which its head is not measured."""
        unknown = self.cfg.new_track_grow * size  # growth per frame of a head whose velocity is unknown
        if t.hits < 2 or t.at_border:  # velocity unknown yet, or measured on a cut box (may not be the head's)
            return unknown
        # A head that just changed speed (braking, turning) may keep doing so: its surprise widens the box too.
        # Never faster than an unknown velocity: that already allows the fastest plausible head.
        speed = float(np.hypot(t.velocity[0], t.velocity[1]))
        return min(self.cfg.grow_per_frame * size + self.cfg.speed_gain * (speed + t.surprise), unknown)

    def backcast(self, frames: int, image_hw: tuple[int, int]) -> HeadBoxes:
        """The heads measured in the current frame as they were ``frames`` frames before it (recorded streams, where
        the next detection is known before the frames between): moved back by their velocity and grown by the same
        uncertainty as a prediction over as many frames (a head seen once, with unknown velocity, grows fastest)."""
        if frames < 0:
            msg = f'frames must be >= 0, got {frames}'
            raise InputError(msg)
        measured = [t for t in self._tracks if t.unseen == 0]
        if not measured:
            return HeadBoxes.empty()
        boxes = []
        for t in measured:
            c = _cxcywh(t.box)
            c[:2] -= t.velocity[:2] * frames
            c[2:] += 2 * frames * self._growth_rate(t, float(max(c[2], c[3])))
            boxes.append(_xyxy(c))
        clipped = clip_boxes(np.array(boxes, np.float32), image_hw)
        keep = (clipped[:, 2] > clipped[:, 0]) & (clipped[:, 3] > clipped[:, 1])
        scores = np.array([t.score for t in measured], np.float32)
        sources = np.array([t.source for t in measured], np.int8)
        return HeadBoxes(clipped[keep], scores[keep], sources[keep])

    def predict(self, image_hw: tuple[int, int]) -> HeadBoxes:
        """Advance one frame without detections."""
        for t in self._tracks:
            t.unseen += 1
        self._tracks = [t for t in self._tracks if t.unseen <= self.cfg.max_age]
        return self._output(image_hw)

    def update(self, heads: HeadBoxes, image_hw: tuple[int, int], frames_elapsed: int = 1) -> HeadBoxes:
        """Advance ``frames_elapsed`` frames and fold in this frame's detections."""
        if frames_elapsed < 1:
            msg = f'frames_elapsed must be >= 1, got {frames_elapsed}'
            raise InputError(msg)
        for t in self._tracks:
            t.unseen += frames_elapsed
        return self.observe(heads, image_hw, age=0)

    def observe(self, heads: HeadBoxes, image_hw: tuple[int, int], age: int) -> HeadBoxes:
        """Fold in detections made on a frame ``age`` frames before the current one (asynchronous detection), without
        advancing: tracks are matched where they were at that frame, and then predicted (and grown) over ``age``
        frames to the current one, so a head that moved since is still covered."""
        if age < 0:
            msg = f'age must be >= 0 frames, got {age}'
            raise InputError(msg)
        # Where every track was at the detection's frame (a track never has a measurement newer than this one:
        # detections arrive in frame order): the head's own box there, not grown (a grown box would overlap, and
        # win, the wrong head).
        shifts = [-min(age, t.unseen) for t in self._tracks]
        pred = np.array([self._predicted(t, d, grown=False) for t, d in zip(self._tracks, shifts, strict=True)],
                        np.float32).reshape(-1, 4)
        det = heads.boxes
        cost, ok = self._match_cost(pred, det, age)
        matched_t: set[int] = set()
        matched_d: set[int] = set()
        if ok.any():
            order = np.dstack(np.unravel_index(np.argsort(cost, axis=None), cost.shape))[0]
            for ti, di in order:
                if not ok[ti, di]:
                    continue
                if ti in matched_t or di in matched_d:
                    continue
                matched_t.add(int(ti))
                matched_d.add(int(di))
                self._absorb(self._tracks[ti], det[di], float(heads.scores[di]), int(heads.sources[di]), age)
                self._tracks[ti].at_border = _at_border(det[di], image_hw)
        self._drop_duplicates(matched_t, age)
        for di in range(len(det)):
            if di not in matched_d:
                self._tracks.append(
                    _Track(
                        det[di].copy(), np.zeros(4, np.float32), float(heads.scores[di]), int(heads.sources[di]),
                        unseen=age, ident=self._next_id, at_border=_at_border(det[di], image_hw),
                    )
                )
                self._next_id += 1
        self._tracks = [t for t in self._tracks if t.unseen <= self.cfg.max_age]
        return self._output(image_hw)

    def _match_cost(self, pred: np.ndarray, det: np.ndarray, age: int) -> tuple[np.ndarray, np.ndarray]:
        """tracks x detections: cost of continuing the track with the detection (centre distance over the larger
        size, plus how much the sizes differ), and whether it may at all (similar size, near the predicted centre)."""
        if not len(pred) or not len(det):
            return np.zeros((len(pred), len(det)), np.float32), np.zeros((len(pred), len(det)), bool)
        meas = np.array([_cxcywh(t.box) for t in self._tracks], np.float32).reshape(-1, 4)  # measured, not grown
        dc = np.array([_cxcywh(b) for b in det], np.float32).reshape(-1, 4)
        ts = np.sqrt(np.maximum(meas[:, 2] * meas[:, 3], 1e-6))
        ds = np.sqrt(np.maximum(dc[:, 2] * dc[:, 3], 1e-6))
        larger = np.maximum(ts[:, None], ds[None])
        ratio = larger / np.minimum(ts[:, None], ds[None])
        pc = np.stack([(pred[:, 0] + pred[:, 2]) / 2, (pred[:, 1] + pred[:, 3]) / 2], 1)
        dist = np.hypot(pc[:, None, 0] - dc[None, :, 0], pc[:, None, 1] - dc[None, :, 1])
        k = np.array([max(t.unseen - age, 1) for t in self._tracks], np.float32)
        reach = (self.cfg.match_dist + self.cfg.match_dist_per_frame * k)[:, None] * larger
        ok = (ratio <= self.cfg.match_size_ratio) & (dist <= reach)
        return (dist / larger + np.log(ratio)).astype(np.float32), ok

    def _drop_duplicates(self, matched: set[int], age: int) -> None:
        """Drop the unmatched tracks that are one head with a track just measured: the same head found twice (pose
        and face detector, on alternating frames) would otherwise keep a second box, growing while unmatched. Its
        size counts as an earlier measurement of that head (the size rule of ``_absorb``), so the two detectors'
        estimates are not lost. A track of another head stays: it differs in size (a far head beside a near one)
        or lies apart."""
        if not matched or len(matched) == len(self._tracks):
            return
        fresh = [self._tracks[i] for i in sorted(matched)]
        fresh_boxes = np.array([t.box for t in fresh], np.float32).reshape(-1, 4)
        fresh_size = np.array([np.sqrt(max(float(np.prod(_cxcywh(t.box)[2:])), 1e-6)) for t in fresh], np.float32)
        keep: list[_Track] = []
        for i, t in enumerate(self._tracks):
            if i in matched:
                keep.append(t)
                continue
            # The head's own box at the detection's frame (not grown).
            box = self._predicted(t, -min(age, t.unseen), grown=False)[None]
            size = float(np.sqrt(max(float(np.prod(_cxcywh(box[0])[2:])), 1e-6)))
            ratio = np.maximum(fresh_size, size) / np.minimum(fresh_size, size)
            # Only a head found by the other detector (face vs pose) is a duplicate: two heads that one detector
            # found apart are two people, however close they walk (dropping one would show its face).
            other_detector = np.array([(t.source == HeadSource.FACE) != (f.source == HeadSource.FACE) for f in fresh])
            dup = same_head(box, fresh_boxes)[0] & (ratio <= self.cfg.match_size_ratio) & other_detector
            if not dup.any():
                keep.append(t)
                continue
            m = fresh[int(np.argmax(dup))]
            c = _cxcywh(m.box)
            c[2:] = np.maximum(c[2:], 0.7 * _cxcywh(box[0])[2:] + 0.3 * c[2:])
            m.box = _xyxy(c)
        self._tracks = keep

    def current(self, image_hw: tuple[int, int]) -> HeadBoxes:
        """The boxes of the current frame, without advancing."""
        return self._output(image_hw)

    def _absorb(self, t: _Track, box: np.ndarray, score: float, source: int, age: int = 0) -> None:
        old, new = _cxcywh(t.box), _cxcywh(box)
        size = float(max(new[2], new[3]))
        # A head moves at most max_speed sizes per frame: a faster "measurement" is a wrong or noisy box.
        limit = np.float32(self.cfg.max_speed * size)
        meas = np.clip((new - old) / max(t.unseen - age, 1), -limit, limit)
        a = self.cfg.velocity_alpha
        t.surprise = min(float(np.hypot(*(meas[:2] - t.velocity[:2]))), float(limit)) if t.hits >= 2 else 0.0
        t.velocity = (a * meas + (1 - a) * t.velocity).astype(np.float32)
        # Size is smoothed but never below the new measurement: a head that shrank in one detection (pose jitter)
        # keeps the larger box for a while; position follows the measurement (lag would expose a moving face).
        size_wh = np.maximum(new[2:], 0.7 * old[2:] + 0.3 * new[2:])
        t.box = _xyxy(np.concatenate([new[:2], size_wh]))
        t.score, t.source, t.unseen = score, source, age
        t.hits += 1

    def _output(self, image_hw: tuple[int, int]) -> HeadBoxes:
        if not self._tracks:
            return HeadBoxes.empty()
        boxes = np.array([self._predicted(t) for t in self._tracks], np.float32)
        scores = np.array([t.score for t in self._tracks], np.float32)
        sources = np.array([t.source if t.unseen == 0 else HeadSource.TRACK for t in self._tracks], np.int8)
        boxes = clip_boxes(boxes, image_hw)
        # Tracks that drifted fully off the image have nothing left to mask.
        keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        return HeadBoxes(boxes[keep], scores[keep], sources[keep])
