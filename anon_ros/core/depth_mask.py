"""Depth-range masking: inside each head box keep only pixels at the head's depth, so the background behind the
head stays untouched (the AVPrivacy idea: a fast detector plus the depth values inside its box).

Fail-closed rules: pixels with unusable depth (0, NaN, inf, the far plane, a saturated 16-bit value) are *in* the
mask, anything nearer than the head is in the mask (an occluder or the face itself), and a head whose depth cannot
be estimated, or whose in-band area looks implausibly small, gets its whole box masked.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import cv2
import numpy as np

from anon_ros.core.errors import InputError
from anon_ros.core.heads import HeadBoxes


class DepthEncoding(enum.Enum):
    """Depth image encodings accepted (ROS names)."""

    FLOAT32_M = '32FC1'  # metres (CARLA / ros-bridge)
    UINT16_MM = '16UC1'  # millimetres (RealSense, Kinect); 0 = no return, 65535 = saturated

    @staticmethod
    def parse(value: str | DepthEncoding) -> DepthEncoding:
        if isinstance(value, DepthEncoding):
            return value
        for enc in DepthEncoding:
            if enc.value.lower() == str(value).lower():
                return enc
        msg = f'depth encoding must be one of {[e.value for e in DepthEncoding]}, got {value!r}'
        raise InputError(msg)


class RegionShape(enum.Enum):
    """Shape of the region anonymized inside a head box."""

    ELLIPSE = 'ellipse'  # head-shaped (slightly larger than inscribed): the result still reads as a head
    BOX = 'box'  # the whole box


@dataclass(frozen=True)
class DepthMaskConfig:
    """Band around the head depth: pixels farther than head + max(back_m, back_rel * head) are background.

    front_m None keeps everything nearer than the head in the mask (fail closed); a number limits it.
    max_valid_m: depths at or beyond this are treated as "no depth" (CARLA's far plane is 1000 m).
    border_stretch: how much further the head ellipse reaches towards the left or right side of its box where that
    lies on the image border (the head may go on beyond a box estimated from a person cut there).
    min_fill: if fewer than this fraction of the box's pixels end up in the mask, mask the whole box.
    occluded_min_frac, occluded_max_borders: the head depth is the median of the box's centre, which a nearer person
    in front of a far head captures. So the band also reaches over every depth cluster behind the anchor's that holds
    at least occluded_min_frac of the box's valid pixels and touches at most occluded_max_borders of the box's four
    sides (a head is a blob in the box; the background behind a head surrounds it and touches three or four sides).
    This fails closed: at worst some background inside the head region is masked.
    """

    back_m: float = 0.35
    back_rel: float = 0.08
    front_m: float | None = None
    max_valid_m: float = 900.0
    min_fill: float = 0.2
    min_valid_frac: float = 0.15
    dilate_rel: float = 0.04
    shape: RegionShape = RegionShape.ELLIPSE
    ellipse_scale: float = 1.12
    border_stretch: float = 1.25
    occluded_min_frac: float = 0.03
    occluded_max_borders: int = 2

    def __post_init__(self) -> None:
        if self.back_m <= 0 or self.back_rel < 0:
            msg = f'back_m must be > 0 and back_rel >= 0, got {self.back_m} and {self.back_rel}'
            raise InputError(msg)
        if self.front_m is not None and self.front_m <= 0:
            msg = f'front_m must be > 0 or None, got {self.front_m}'
            raise InputError(msg)
        if self.max_valid_m <= 0:
            msg = f'max_valid_m must be > 0, got {self.max_valid_m}'
            raise InputError(msg)
        if not isinstance(self.shape, RegionShape):
            msg = f'shape must be a RegionShape, got {self.shape!r}'
            raise InputError(msg)
        if not 1.0 <= self.ellipse_scale <= 1.5:
            msg = f'ellipse_scale must be in [1, 1.5] (never smaller than the inscribed ellipse), got {self.ellipse_scale}'
            raise InputError(msg)
        if not 1.0 <= self.border_stretch <= 2.0:
            msg = f'border_stretch must be in [1, 2], got {self.border_stretch}'
            raise InputError(msg)
        if not 0 <= self.occluded_max_borders <= 4:
            msg = f'occluded_max_borders must be in [0, 4], got {self.occluded_max_borders}'
            raise InputError(msg)
        for name in ('min_fill', 'min_valid_frac', 'dilate_rel', 'occluded_min_frac'):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                msg = f'{name} must be in [0, 1], got {v}'
                raise InputError(msg)


def check_depth(depth: np.ndarray, encoding: str | DepthEncoding) -> tuple[np.ndarray, DepthEncoding]:
    """Validate a depth image against its encoding; return it as HxW plus the parsed encoding."""
    enc = DepthEncoding.parse(encoding)
    if not isinstance(depth, np.ndarray) or depth.ndim not in (2, 3) or (depth.ndim == 3 and depth.shape[2] != 1):
        got = f'{type(depth).__name__} {getattr(depth, "shape", "")}'
        msg = f'expected an HxW (or HxWx1) depth image, got {got}'
        raise InputError(msg)
    if depth.ndim == 3:
        depth = depth[:, :, 0]
    if enc is DepthEncoding.FLOAT32_M:
        if depth.dtype not in (np.float32, np.float64):
            msg = f'32FC1 depth must be float32 metres, got dtype {depth.dtype}'
            raise InputError(msg)
    elif enc is DepthEncoding.UINT16_MM:
        if depth.dtype != np.uint16:
            msg = f'16UC1 depth must be uint16 millimetres, got dtype {depth.dtype}'
            raise InputError(msg)
    else:
        msg = f'unhandled depth encoding {enc}'
        raise InputError(msg)
    return depth, enc


def depth_to_metres(depth: np.ndarray, encoding: str | DepthEncoding, max_valid_m: float = 900.0) -> np.ndarray:
    """float32 metres with every unusable value (0, NaN, inf, far plane, saturation) set to NaN.

    Cheap enough to run per head region, which is how the pipeline uses it (never on the whole frame).
    """
    depth, enc = check_depth(depth, encoding)
    if enc is DepthEncoding.FLOAT32_M:
        m = depth.astype(np.float32, copy=True)
    elif enc is DepthEncoding.UINT16_MM:
        m = depth.astype(np.float32) * np.float32(0.001)
        m[depth == np.iinfo(np.uint16).max] = np.nan
    else:
        msg = f'unhandled depth encoding {enc}'
        raise InputError(msg)
    with np.errstate(invalid='ignore'):
        m[~((m > 0) & (m < max_valid_m))] = np.nan  # also catches NaN and inf
    return m


def align_depth(depth: np.ndarray, image_hw: tuple[int, int], max_aspect_error: float = 0.02) -> np.ndarray:
    """Resize depth to the image size (nearest: never blend a head with the background behind it).

    Only a pure scaling is accepted: different aspect ratios mean a different field of view or a crop, which
    nearest resizing would silently misalign.
    """
    h, w = image_hw
    dh, dw = depth.shape[:2]
    if (dh, dw) == (h, w):
        return depth
    if dh == 0 or dw == 0:
        msg = f'depth image is empty ({dh}x{dw}) for a {h}x{w} image'
        raise InputError(msg)
    if abs((dw / dh) / (w / h) - 1.0) > max_aspect_error:
        msg = (
            f'depth {dw}x{dh} and RGB {w}x{h} have different aspect ratios; only a scaled depth image can be '
            'aligned here (register depth to the colour camera first)'
        )
        raise InputError(msg)
    if depth.dtype == np.float64:
        depth = depth.astype(np.float32)  # cv2.resize keeps the dtype; float32 is what the pipeline expects
    return cv2.resize(depth, (w, h), interpolation=cv2.INTER_NEAREST)


def head_depth(region_m: np.ndarray, min_valid_frac: float) -> float | None:
    """Robust depth of the head in a head box: median of valid depths in the box's central part.

    None when too few pixels there have a valid depth (the caller then masks the whole box).
    """
    h, w = region_m.shape
    core = region_m[int(h * 0.2) : max(int(h * 0.75), int(h * 0.2) + 1), int(w * 0.25) : max(int(w * 0.75), int(w * 0.25) + 1)]
    valid = core[np.isfinite(core)]
    if valid.size == 0 or valid.size < min_valid_frac * core.size:
        return None
    return float(np.median(valid))


def head_masks(
    depth: np.ndarray | None,
    heads: HeadBoxes,
    image_hw: tuple[int, int],
    cfg: DepthMaskConfig,
    encoding: str | DepthEncoding = DepthEncoding.FLOAT32_M,
) -> np.ndarray:
    """Boolean HxW mask of head pixels: depth band inside each box, or whole boxes when depth is None.

    depth is in its raw encoding (32FC1 metres or 16UC1 millimetres) at the image size (see align_depth); it is
    converted per head region only, which keeps the cost independent of the frame size.
    """
    h, w = image_hw
    if depth is not None and depth.shape[:2] != (h, w):
        msg = f'depth {depth.shape[:2]} must match the image {image_hw}; align it first (align_depth)'
        raise InputError(msg)
    mask = np.zeros((h, w), bool)
    for box in heads.boxes:
        x1, y1 = int(np.floor(box[0])), int(np.floor(box[1]))
        x2, y2 = int(np.ceil(box[2])), int(np.ceil(box[3]))
        x1, y1, x2, y2 = max(x1, 0), max(y1, 0), min(x2, w), min(y2, h)
        if x2 <= x1 or y2 <= y1:
            continue
        shape = shape_mask(box, x1, y1, x2, y2, cfg, cut=(x1 == 0, x2 == w))
        if depth is None:
            mask[y1:y2, x1:x2] |= shape
            continue
        region_m = depth_to_metres(depth[y1:y2, x1:x2], encoding, cfg.max_valid_m)
        mask[y1:y2, x1:x2] |= region_mask(region_m, cfg) & shape
    return mask


def shape_mask(
    box: np.ndarray, x1: int, y1: int, x2: int, y2: int, cfg: DepthMaskConfig,
    cut: tuple[bool, bool] = (False, False),
) -> np.ndarray:
    """The region of a head box (clipped to [x1:x2, y1:y2]) that may be anonymized. ``cut``: whether its left and
    right sides lie on the image border, where the head may go on beyond the box."""
    if cfg.shape is RegionShape.BOX:
        return np.ones((y2 - y1, x2 - x1), bool)
    if cfg.shape is RegionShape.ELLIPSE:
        # Axes from the unclipped box, so a head cut by the image border keeps its true shape.
        cx, cy = (box[0] + box[2]) / 2 - x1, (box[1] + box[3]) / 2 - y1
        ax = max((box[2] - box[0]) / 2 * cfg.ellipse_scale, 0.5)
        ay = max((box[3] - box[1]) / 2 * cfg.ellipse_scale, 0.5)
        # A box clipped at the left or right border was estimated from a person cut there (walking in or out), so
        # the head may go on past the box's corners: towards that side the ellipse reaches border_stretch further.
        dx = np.arange(x2 - x1, dtype=np.float32) + 0.5 - cx
        left, right = (cfg.border_stretch if c else 1.0 for c in cut)
        xs = (dx / np.where(dx < 0, ax * left, ax * right)) ** 2
        ys = ((np.arange(y2 - y1, dtype=np.float32) + 0.5 - cy) / ay) ** 2
        return (ys[:, None] + xs[None, :]) <= 1.0
    msg = f'unhandled region shape {cfg.shape}'
    raise InputError(msg)


def _band(d: float, cfg: DepthMaskConfig) -> float:
    return max(cfg.back_m, cfg.back_rel * d)


def _occluded_far(region_m: np.ndarray, d: float, cfg: DepthMaskConfig) -> float:
    """Far limit of the band: the anchor's back margin, extended over the depth clusters behind it that may be the
    head itself, partly hidden behind a nearer person who captured the anchor (see DepthMaskConfig)."""
    far = d + _band(d, cfg)
    valid = np.isfinite(region_m)
    vals = np.sort(region_m[valid])
    vals = vals[vals > far]
    if vals.size < max(cfg.occluded_min_frac * np.count_nonzero(valid), 16):
        return far
    # Clusters of the depths behind the band: split wherever consecutive depths jump by more than a band.
    gaps = np.flatnonzero(np.diff(vals) > np.maximum(cfg.back_m, cfg.back_rel * vals[:-1]))
    starts = np.concatenate([[0], gaps + 1])
    ends = np.concatenate([gaps + 1, [vals.size]])
    min_n = max(cfg.occluded_min_frac * np.count_nonzero(valid), 16)
    h, w = region_m.shape
    e = max(1, int(round(0.02 * max(h, w))))
    for s0, e0 in zip(starts, ends, strict=True):
        if e0 - s0 < min_n:
            continue
        lo, hi = vals[s0], vals[e0 - 1]
        with np.errstate(invalid='ignore'):
            c = (region_m >= lo) & (region_m <= hi)
        borders = int(c[:e].any()) + int(c[-e:].any()) + int(c[:, :e].any()) + int(c[:, -e:].any())
        if borders <= cfg.occluded_max_borders:
            far = max(far, float(hi) + _band(float(hi), cfg))
    return far


def region_mask(region_m: np.ndarray, cfg: DepthMaskConfig) -> np.ndarray:
    """Mask of one head box (depth in metres, NaN = unusable)."""
    d = head_depth(region_m, cfg.min_valid_frac)
    if d is None:
        return np.ones(region_m.shape, bool)
    far = _occluded_far(region_m, d, cfg)
    with np.errstate(invalid='ignore'):
        keep = ~(region_m > far)  # NaN compares False: unusable depth stays in the mask
        if cfg.front_m is not None:
            keep &= ~(region_m < d - cfg.front_m)
    if keep.mean() < cfg.min_fill:
        return np.ones(region_m.shape, bool)
    r = int(round(cfg.dilate_rel * max(region_m.shape)))
    if r > 0:
        # Cover depth/colour misalignment and anti-aliased hair at the silhouette.
        # A rectangular kernel is separable (fast at any radius).
        keep = cv2.dilate(keep.view(np.uint8), cv2.getStructuringElement(cv2.MORPH_RECT, (2 * r + 1, 2 * r + 1))).view(bool)
    return keep


def flatten_depth(depth: np.ndarray, mask: np.ndarray, margin_px: int = 3, out: np.ndarray | None = None) -> np.ndarray:
    """``depth`` with its masked regions (anonymized heads) holding one value each, their median valid depth.

    A depth map of a face is 3D face geometry (identifying); a flat patch at the head's distance keeps what
    perception needs (where the person is, how far) and removes the shape. ``mask`` may have another size than
    ``depth`` (the RGB image's): it is resized, grown by ``margin_px`` depth pixels, and regions are its connected
    components. A region without valid depth (0, NaN, inf, far plane, saturation) becomes invalid as a whole (0 or
    NaN, the encoding's "no return"). Any single-channel depth (32FC1 metres, 16UC1 millimetres), dtype kept.
    Written into ``out`` (same shape and dtype, holding a copy of ``depth``) when given, else into a new copy.
    """
    if depth.ndim != 2 or mask.ndim != 2:
        msg = f'depth and mask must be 2-D, got {depth.shape} and {mask.shape}'
        raise InputError(msg)
    if out is None:
        out = depth.copy()
    elif out.shape != depth.shape or out.dtype != depth.dtype:
        msg = f'out must be {depth.shape} {depth.dtype}, got {out.shape} {out.dtype}'
        raise InputError(msg)
    small: np.ndarray = mask.astype(np.uint8)
    if small.shape != depth.shape:
        small = np.asarray(cv2.resize(small, (depth.shape[1], depth.shape[0]), interpolation=cv2.INTER_NEAREST))
    x, y, w, h = cv2.boundingRect(small)  # only the part with heads is worked on
    if w == 0 or h == 0:
        return out
    x0, y0 = max(x - margin_px, 0), max(y - margin_px, 0)
    x1, y1 = min(x + w + margin_px, depth.shape[1]), min(y + h + margin_px, depth.shape[0])
    grown: np.ndarray = small[y0:y1, x0:x1]
    if margin_px > 0:
        grown = np.asarray(cv2.dilate(grown, np.ones((2 * margin_px + 1, 2 * margin_px + 1), np.uint8)))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(grown, connectivity=8)
    floating = depth.dtype.kind == 'f'
    for label in range(1, count):
        bx, by, bw, bh = (int(v) for v in stats[label, :4])
        region = labels[by:by + bh, bx:bx + bw] == label  # work inside the region's box only
        patch = out[y0 + by:y0 + by + bh, x0 + bx:x0 + bx + bw]
        values = depth[y0 + by:y0 + by + bh, x0 + bx:x0 + bx + bw][region]
        # No return, the far plane (CARLA's 1000 m) and saturation are not the head's depth.
        ok = (np.isfinite(values) & (values > 0) & (values < 900)) if floating else (values > 0) & (values < 65535)
        valid = values[ok]
        patch[region] = np.median(valid) if valid.size else (np.nan if floating else 0)
    return out
