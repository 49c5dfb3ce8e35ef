"""Synthetic CARLA-like RGB-D scenes with real people, and their ground truth.

No registry ships real RGB-D data with people, so real photos (see sample_images) are cut out with a simple
head-ellipse + torso silhouette and composited as flat cut-outs into a procedural street (sky at CARLA's 1000 m far
plane, a ground plane, building blocks) at a chosen face width and the depth a 90-degree-FOV camera would see that
face at. Depth is float32 metres (32FC1, as CARLA's ros-bridge publishes).

    scene = compose_scene(5, (720, 1280), np.random.default_rng(0))
    scene.rgb, scene.depth_m, scene.head_mask, scene.face_boxes, ...
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from anon_ros.core.errors import InputError
from anon_ros.core.sample_images import load_sample_image

FAR_PLANE_M = 1000.0  # CARLA depth camera far plane (sky)
FACE_WIDTH_M = 0.16  # real width of the face box the attacker uses, used to place a face at a depth


@dataclass(frozen=True)
class PersonSource:
    """A person in a sample photo: the person box to cut from and the face box (dlib-style, brows to chin)."""

    image: str
    person_box: tuple[int, int, int, int]
    face_box: tuple[int, int, int, int]


#: Annotated people in the registry photos (face boxes from dlib's HOG detector, person boxes from YOLO11n-pose).
PERSON_SOURCES: dict[str, PersonSource] = {
    'astronaut': PersonSource('astronaut', (12, 18, 360, 511), (175, 76, 265, 166)),
    'grace_hopper': PersonSource('grace_hopper', (10, 36, 512, 599), (180, 139, 366, 325)),
    'bus_left': PersonSource('bus', (48, 400, 244, 906), (117, 420, 160, 463)),
    'bus_middle': PersonSource('bus', (223, 405, 344, 859), (271, 430, 314, 473)),
    'zidane': PersonSource('zidane', (740, 40, 1143, 710), (906, 116, 1061, 270)),
}

#: Sources that need only scikit-image and matplotlib (no ultralytics assets).
LIGHT_SOURCES = ('astronaut', 'grace_hopper')


@dataclass(frozen=True)
class Scene:
    """A composited RGB-D frame. Per person i: person_boxes[i], head_boxes[i] (the whole head ellipse's box),
    face_boxes[i] (brows to chin, where identity lives), face_widths[i] px, depths_m[i], sources[i].
    head_mask: union of the visible head pixels (ground truth for "every face region is anonymized")."""

    rgb: np.ndarray
    depth_m: np.ndarray
    head_mask: np.ndarray
    person_boxes: np.ndarray
    head_boxes: np.ndarray
    face_boxes: np.ndarray
    face_widths: np.ndarray
    depths_m: np.ndarray
    sources: tuple[str, ...]

    def __post_init__(self) -> None:
        h, w = self.rgb.shape[:2]
        if self.rgb.dtype != np.uint8 or self.rgb.ndim != 3 or self.rgb.shape[2] != 3:
            msg = f'rgb must be HxWx3 uint8, got {self.rgb.dtype} {self.rgb.shape}'
            raise InputError(msg)
        if self.depth_m.shape != (h, w) or self.depth_m.dtype != np.float32:
            msg = f'depth_m must be float32 {(h, w)}, got {self.depth_m.dtype} {self.depth_m.shape}'
            raise InputError(msg)
        if self.head_mask.shape != (h, w) or self.head_mask.dtype != bool:
            msg = f'head_mask must be bool {(h, w)}, got {self.head_mask.dtype} {self.head_mask.shape}'
            raise InputError(msg)
        n = len(self.sources)
        for name in ('person_boxes', 'head_boxes', 'face_boxes'):
            if getattr(self, name).shape != (n, 4):
                msg = f'{name} must have shape ({n}, 4), got {getattr(self, name).shape}'
                raise InputError(msg)
        for name in ('face_widths', 'depths_m'):
            if getattr(self, name).shape != (n,):
                msg = f'{name} must have shape ({n},), got {getattr(self, name).shape}'
                raise InputError(msg)

    def depth_16uc1(self) -> np.ndarray:
        """The depth as 16UC1 millimetres (0 = no return where it exceeds the 16-bit range, like real sensors)."""
        mm = np.round(self.depth_m * 1000.0)
        mm[(mm > 65534) | ~np.isfinite(mm)] = 0
        return mm.astype(np.uint16)


def focal_px(width: int, fov_deg: float = 90.0) -> float:
    """Pinhole focal length in pixels for a horizontal field of view (CARLA's default camera: 90 degrees)."""
    return width / (2.0 * np.tan(np.radians(fov_deg) / 2.0))


def street_background(size: tuple[int, int], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A CARLA-like empty street: RGB uint8 and depth float32 metres (sky = far plane)."""
    h, w = size
    f = focal_px(w)
    horizon = int(h * rng.uniform(0.38, 0.48))
    cam_height = 1.6
    rgb = np.zeros((h, w, 3), np.float32)
    depth = np.full((h, w), FAR_PLANE_M, np.float32)
    # Sky gradient.
    t = np.linspace(0, 1, max(horizon, 1), dtype=np.float32)[:, None]
    rgb[:horizon] = (np.array([90, 140, 220], np.float32) * (1 - t) + np.array([200, 215, 235], np.float32) * t)[:, None, :]
    # Ground plane: depth along the optical axis = f * cam_height / (row - horizon).
    rows = np.arange(horizon, h, dtype=np.float32)
    ground = (f * cam_height / np.maximum(rows - horizon + 0.5, 0.5)).clip(0, FAR_PLANE_M)
    depth[horizon:] = ground[:, None]
    road = rng.uniform(70, 100)
    rgb[horizon:] = road
    rgb[horizon:] += rng.normal(0, 6, (h - horizon, w, 1)).astype(np.float32)
    # Buildings: boxes standing on the ground at 15-80 m.
    for _ in range(int(rng.integers(3, 7))):
        d = float(rng.uniform(15, 80))
        bw = int(rng.uniform(0.1, 0.35) * w)
        bh = int(f * rng.uniform(6, 25) / d)
        x1 = int(rng.integers(-bw // 2, w - bw // 2))
        base = horizon + int(f * cam_height / d)
        y1 = max(base - bh, 0)
        xs, xe = max(x1, 0), min(x1 + bw, w)
        if xe <= xs or base <= y1:
            continue
        region = depth[y1:base, xs:xe]
        nearer = d < region
        color = rng.uniform(60, 200, 3).astype(np.float32)
        rgb[y1:base, xs:xe][nearer] = color
        region[nearer] = d
    rgb += rng.normal(0, 3, rgb.shape).astype(np.float32)
    return np.clip(rgb, 0, 255).astype(np.uint8), depth


def _cutout(src: PersonSource, scale: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Scaled person crop, its silhouette, head-ellipse mask and face box (crop coordinates)."""
    img = load_sample_image(src.image)
    px1, py1, px2, py2 = src.person_box
    fx1, fy1, fx2, fy2 = src.face_box
    fw, fh = fx2 - fx1, fy2 - fy1
    # Extend the crop upwards so the whole head (hair) is inside it.
    py1 = max(0, min(py1, int(fy1 - 0.6 * fh)))
    crop = img[py1:py2, px1:px2]
    ch, cw = crop.shape[:2]
    cx, cy = (fx1 + fx2) / 2 - px1, (fy1 + fy2) / 2 - py1
    head = np.zeros((ch, cw), np.uint8)
    axes = (int(round(0.72 * fw)), int(round(0.95 * fh)))
    cv2.ellipse(head, (int(round(cx)), int(round(cy - 0.15 * fh))), axes, 0, 0, 360, 1, -1)
    body = head.copy()
    neck_y = fy2 - py1
    shoulder_y = neck_y + 0.45 * fh
    poly = np.array(
        [[cx - 0.35 * fw, neck_y - 0.1 * fh], [cx + 0.35 * fw, neck_y - 0.1 * fh], [cw - 1, shoulder_y], [cw - 1, ch - 1],
         [0, ch - 1], [0, shoulder_y]],
        np.int32,
    )
    cv2.fillPoly(body, [poly], 1)
    out_w, out_h = max(1, round(cw * scale)), max(1, round(ch * scale))
    crop_s = cv2.resize(crop, (out_w, out_h), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    body_s = cv2.resize(body, (out_w, out_h), interpolation=cv2.INTER_NEAREST).astype(bool)
    head_s = cv2.resize(head, (out_w, out_h), interpolation=cv2.INTER_NEAREST).astype(bool)
    face = np.array([fx1 - px1, fy1 - py1, fx2 - px1, fy2 - py1], np.float32) * scale
    return crop_s, body_s, head_s, face


def compose_scene(
    n_people: int,
    size: tuple[int, int],
    rng: np.random.Generator,
    face_widths: list[float] | np.ndarray | None = None,
    sources: list[str] | tuple[str, ...] | None = None,
    depth_jitter: float = 0.1,
    whole_people: bool = False,
) -> Scene:
    """Composite ``n_people`` real people into a synthetic street at ``size`` = (H, W).

    face_widths: per-person face width in px (default uniform 20-160); the depth follows from a 90-degree camera
    (width FACE_WIDTH_M at that depth, +- depth_jitter). sources: PERSON_SOURCES keys to draw from (default: all).
    People are placed so that no head is occluded by another person; a person that cannot be placed is dropped.
    whole_people: keep every cut-out entirely inside the frame (else only the face must be, bodies may leave it).
    """
    h, w = size
    if h < 32 or w < 32:
        msg = f'scene size must be at least 32x32, got {size}'
        raise InputError(msg)
    if n_people < 0:
        msg = f'n_people must be >= 0, got {n_people}'
        raise InputError(msg)
    names = tuple(sources) if sources is not None else tuple(PERSON_SOURCES)
    unknown = [s for s in names if s not in PERSON_SOURCES]
    if unknown or not names:
        msg = f'sources must be non-empty keys of PERSON_SOURCES {sorted(PERSON_SOURCES)}, got {list(names)}'
        raise InputError(msg)
    if face_widths is None:
        widths = rng.uniform(20, 160, n_people)
    else:
        widths = np.asarray(face_widths, np.float64)
        if widths.shape != (n_people,) or np.any(widths < 4):
            msg = f'face_widths must be {n_people} values >= 4 px, got {widths}'
            raise InputError(msg)
    rgb, depth = street_background(size, rng)
    f = focal_px(w)
    placed: list[_Placed] = []
    occupied: list[np.ndarray] = []  # person boxes placed so far
    heads_placed: list[np.ndarray] = []
    for i in range(n_people):
        name = names[int(rng.integers(len(names)))] if sources is None else names[i % len(names)]
        src = PERSON_SOURCES[name]
        scale = widths[i] / (src.face_box[2] - src.face_box[0])
        crop, body, head, face = _cutout(src, scale)
        ch, cw = crop.shape[:2]
        fwid = float(face[2] - face[0])
        for _ in range(200):
            # The face must be fully inside the frame; the body may leave it unless whole_people.
            if whole_people:
                if cw > w or ch > h:
                    break
                fx, fy = rng.uniform(0, w - cw), rng.uniform(0, h - ch)
            else:
                fx = rng.uniform(-face[0], w - face[2])
                fy = rng.uniform(-face[1] + 0.6 * fwid, h - face[3])
            ox, oy = int(round(fx)), int(round(fy))
            pbox = np.array([ox, oy, ox + cw, oy + ch], np.float32)
            hbox = _mask_box(head, ox, oy)
            clash = any(_intersects(hbox, o) for o in occupied) or any(_intersects(pbox, hb) for hb in heads_placed)
            if not clash:
                break
        else:
            continue
        if whole_people and (cw > w or ch > h):
            continue
        d = float(f * FACE_WIDTH_M / widths[i] * (1 + rng.uniform(-depth_jitter, depth_jitter)))
        placed.append(_Placed(name, crop, body, head, face, ox, oy, d, float(widths[i])))
        occupied.append(pbox)
        heads_placed.append(hbox)
    # Paint far to near so nearer people cover farther ones.
    placed.sort(key=lambda p: -p.d)
    head_mask = np.zeros((h, w), bool)
    person_boxes: list[list[int]] = []
    head_boxes: list[np.ndarray] = []
    face_boxes: list[np.ndarray] = []
    fws: list[float] = []
    ds: list[float] = []
    srcs: list[str] = []
    for p in placed:
        crop, body, head, ox, oy, d = p.crop, p.body, p.head, p.ox, p.oy, p.d
        ch, cw = crop.shape[:2]
        x1, y1, x2, y2 = max(ox, 0), max(oy, 0), min(ox + cw, w), min(oy + ch, h)
        if x2 <= x1 or y2 <= y1:
            continue
        sl = (slice(y1 - oy, y2 - oy), slice(x1 - ox, x2 - ox))
        sil = body[sl]
        rgb[y1:y2, x1:x2][sil] = crop[sl][sil]
        # A head is rounder than a card: its centre 4 cm nearer than the body plane.
        pd = np.full(sil.shape, d, np.float32)
        pd[head[sl]] = d - 0.04
        depth[y1:y2, x1:x2][sil] = pd[sil]
        head_mask[y1:y2, x1:x2][sil] = False  # nearer body covers farther heads
        head_mask[y1:y2, x1:x2] |= head[sl]
        person_boxes.append([ox, oy, ox + cw, oy + ch])
        head_boxes.append(_mask_box(head, ox, oy))
        face_boxes.append(p.face + np.array([ox, oy, ox, oy], np.float32))
        fws.append(p.fw)
        ds.append(d)
        srcs.append(p.name)
    n = len(srcs)

    def arr(v: list[list[int]] | list[np.ndarray]) -> np.ndarray:
        return np.asarray(v, np.float32).reshape(n, 4)

    return Scene(
        rgb=rgb,
        depth_m=depth,
        head_mask=head_mask,
        person_boxes=arr(person_boxes),
        head_boxes=arr(head_boxes),
        face_boxes=arr(face_boxes),
        face_widths=np.asarray(fws, np.float32).reshape(n),
        depths_m=np.asarray(ds, np.float32).reshape(n),
        sources=tuple(srcs),
    )


@dataclass
class _Placed:
    name: str
    crop: np.ndarray
    body: np.ndarray
    head: np.ndarray
    face: np.ndarray
    ox: int
    oy: int
    d: float
    fw: float


def _mask_box(mask: np.ndarray, ox: int, oy: int) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    return np.array([xs.min() + ox, ys.min() + oy, xs.max() + 1 + ox, ys.max() + 1 + oy], np.float32)


def _intersects(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3])
