"""An endless synthetic RGB-D video of real people walking through a CARLA-like street, with ground truth.

Built from helper pieces of :mod:`anon_ros.core.scene` (the street background, the person cut-outs from registry
photos, the 90-degree camera model), so frames look exactly like ``compose_scene``'s, but the people *move*: each
walks sideways at its own depth and speed and turns at the image edges, bobbing slightly with each step, so
trackers downstream see identities persist and cross. Frame ``i`` is a pure function of ``i`` (and the seed), so a
stream can skip frames, restart or be replayed.

``carla_frame()`` gives the buffers a CARLA camera trio would deliver (BGRA RGB, BGRA-encoded depth, semantic tags
in R), so the synthetic source node publishes through the very decoders the CARLA bridge uses.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from anon_ros.core import scene as scene_module
from anon_ros.core.errors import AnonRosError, InputError
from anon_ros.core.scene import FACE_WIDTH_M, PERSON_SOURCES, focal_px, street_background
from carla_bridge.conversions import (
    FAR_PLANE_M,
    PEDESTRIAN_TAG,
    ROAD_TAG,
    SKY_TAG,
    encode_depth,
    encode_rgb,
    encode_tags,
)

# The scene module's cut-out maker (private there today; a public ``cutout`` is preferred when it exists).
_cutout = getattr(scene_module, 'cutout', None) or scene_module._cutout  # noqa: SLF001

WALK_SPEED_MPS = (0.6, 1.6)
"""Range of walking speeds (m/s); the image speed follows from the depth."""
FACE_WIDTH_PX = (16.0, 64.0)
"""Range of face widths (px at 640 px image width, scaled with the width): people at about 0.8-3.2 m."""


@dataclass(frozen=True)
class SyntheticFrame:
    """One frame: rgb (H, W, 3) uint8, depth_m (H, W) float32 metres, head_mask and pedestrian_mask (H, W) bool,
    head_boxes (n, 4) float32 x1 y1 x2 y2 of the heads in view (before occlusion), person_ids (n,) int (stable over time)."""

    index: int
    rgb: np.ndarray
    depth_m: np.ndarray
    head_mask: np.ndarray
    pedestrian_mask: np.ndarray
    head_boxes: np.ndarray
    person_ids: np.ndarray

    def __post_init__(self) -> None:
        h, w = self.rgb.shape[:2]
        if self.rgb.dtype != np.uint8 or self.rgb.shape != (h, w, 3):
            msg = f'rgb must be (H, W, 3) uint8, got {self.rgb.dtype} {self.rgb.shape}'
            raise InputError(msg)
        for name, dtype in (('depth_m', np.float32), ('head_mask', bool), ('pedestrian_mask', bool)):
            arr = getattr(self, name)
            if arr.shape != (h, w) or arr.dtype != dtype:
                msg = f'{name} must be {np.dtype(dtype)} {(h, w)}, got {arr.dtype} {arr.shape}'
                raise InputError(msg)
        n = len(self.person_ids)
        if self.head_boxes.shape != (n, 4):
            msg = f'head_boxes must have shape ({n}, 4), got {self.head_boxes.shape}'
            raise InputError(msg)

    def carla_frame(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(rgb, depth, semantic) as the BGRA (H, W, 4) uint8 buffers CARLA's three cameras would deliver."""
        tags = np.where(self.depth_m >= FAR_PLANE_M, np.uint8(SKY_TAG), np.uint8(ROAD_TAG))
        tags[self.pedestrian_mask] = PEDESTRIAN_TAG
        return encode_rgb(self.rgb), encode_depth(self.depth_m), encode_tags(tags)


@dataclass(frozen=True)
class _Walker:
    """A person cut-out and how it moves: x(t) bounces between x_min and x_max at vx px/s; y bobs."""

    crop: np.ndarray
    body: np.ndarray
    head: np.ndarray
    depth_m: float
    x0: float
    x_min: float
    x_max: float
    vx: float
    y: float
    bob_px: float
    step_hz: float


class SyntheticStream:
    """Frames of ``n_people`` real people walking at several depths, at ``fps`` frames per second.

    size: (height, width). Person photos whose registry package is missing are skipped; if none is available,
    raises the scene module's error naming the packages.
    """

    def __init__(self, size: tuple[int, int], n_people: int, seed: int, fps: float) -> None:
        h, w = size
        if h < 32 or w < 32:
            msg = f'stream size must be at least 32x32, got {size}'
            raise InputError(msg)
        if n_people < 0:
            msg = f'n_people must be >= 0, got {n_people}'
            raise InputError(msg)
        if fps <= 0:
            msg = f'fps must be positive, got {fps}'
            raise InputError(msg)
        self.size = (h, w)
        self.fps = float(fps)
        rng = np.random.default_rng(seed)
        self._background_rgb, self._background_depth = street_background(self.size, rng)
        self._walkers = self._make_walkers(n_people, rng)

    def _make_walkers(self, n: int, rng: np.random.Generator) -> list[_Walker]:
        h, w = self.size
        f = focal_px(w)
        names = list(PERSON_SOURCES)
        # Spread the face sizes (hence depths) evenly over the range, so people are near, middle and far.
        lo, hi = (v * w / 640.0 for v in FACE_WIDTH_PX)
        widths = np.linspace(hi, lo, n) if n > 1 else np.array([0.5 * (lo + hi)] * n)
        walkers: list[_Walker] = []
        last_error: AnonRosError | None = None
        for i, face_w in enumerate(widths):
            for attempt in range(len(names)):
                src = PERSON_SOURCES[names[(i + attempt) % len(names)]]
                try:
                    crop, body, head, face = _cutout(src, face_w / (src.face_box[2] - src.face_box[0]))
                    break
                except AnonRosError as err:  # that photo's package is missing: try the next photo
                    last_error = err
            else:
                assert last_error is not None
                raise last_error
            depth = float(f * FACE_WIDTH_M / face_w)
            # The face stays inside the frame: x in [-face_x1, w - face_x2], y likewise.
            x_min, x_max = float(-face[0]), float(w - face[2])
            # Faces between 25 % and 55 % of the height (standing people seen from a car's roof camera).
            y_lo = max(float(-face[1] + 0.3 * face_w), 0.25 * h - float(face[1]))
            y_hi = min(float(h - face[3] - 2), 0.55 * h - float(face[1]))
            y = float(rng.uniform(y_lo, max(y_lo, y_hi)))
            vx = float(rng.uniform(*WALK_SPEED_MPS) * f / depth) * (1 if rng.random() < 0.5 else -1)
            walkers.append(_Walker(
                crop=crop, body=body, head=head, depth_m=depth, x0=float(rng.uniform(x_min, max(x_min, x_max))),
                x_min=x_min, x_max=max(x_min, x_max), vx=vx, y=y, bob_px=0.03 * face_w,
                step_hz=float(rng.uniform(1.6, 2.2)),
            ))
        return walkers

    @property
    def n_people(self) -> int:
        return len(self._walkers)

    def _position(self, walker: _Walker, t: float) -> tuple[int, int]:
        span = walker.x_max - walker.x_min
        if span <= 0:
            x = walker.x_min
        else:
            # Triangle wave: walk to one edge, turn, walk back.
            s = (walker.x0 - walker.x_min + walker.vx * t) % (2 * span)
            x = walker.x_min + (s if s <= span else 2 * span - s)
        y = walker.y - walker.bob_px * abs(np.sin(np.pi * walker.step_hz * t))
        return round(x), round(y)

    def frame(self, index: int) -> SyntheticFrame:
        """Frame number ``index`` (time index / fps)."""
        h, w = self.size
        t = index / self.fps
        rgb = self._background_rgb.copy()
        depth = self._background_depth.copy()
        head_mask = np.zeros((h, w), bool)
        pedestrians = np.zeros((h, w), bool)
        boxes: list[list[float]] = []
        ids: list[int] = []
        # Paint far to near so nearer people cover farther ones (their heads included).
        order = sorted(range(len(self._walkers)), key=lambda k: -self._walkers[k].depth_m)
        for k in order:
            wk = self._walkers[k]
            ox, oy = self._position(wk, t)
            ch, cw = wk.crop.shape[:2]
            x1, y1, x2, y2 = max(ox, 0), max(oy, 0), min(ox + cw, w), min(oy + ch, h)
            if x2 <= x1 or y2 <= y1:
                continue
            sl = (slice(y1 - oy, y2 - oy), slice(x1 - ox, x2 - ox))
            sil = wk.body[sl]
            head = wk.head[sl]
            rgb[y1:y2, x1:x2][sil] = wk.crop[sl][sil]
            # A head is rounder than a card: its centre 4 cm nearer than the body plane (as in compose_scene).
            d = np.where(head, wk.depth_m - 0.04, wk.depth_m).astype(np.float32)
            depth[y1:y2, x1:x2][sil] = d[sil]
            pedestrians[y1:y2, x1:x2] |= sil
            head_mask[y1:y2, x1:x2][sil] = False  # a nearer body covers farther heads
            head_mask[y1:y2, x1:x2] |= head
            ys, xs = np.nonzero(head)
            if len(xs):
                boxes.append([xs.min() + x1, ys.min() + y1, xs.max() + 1 + x1, ys.max() + 1 + y1])
                ids.append(k)
        return SyntheticFrame(
            index=index,
            rgb=rgb,
            depth_m=depth,
            head_mask=head_mask,
            pedestrian_mask=pedestrians,
            head_boxes=np.asarray(boxes, np.float32).reshape(len(ids), 4),
            person_ids=np.asarray(ids, np.int64),
        )
