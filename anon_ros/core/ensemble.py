"""The face ensemble: Gaussian noise, a random perspective warp, smoothing, and down/up resampling.

Every strength is relative to the head box, so a 20 px and a 200 px head lose the same amount of identity, and the
work runs at a fixed working size per head, so its cost does not grow with the head. The information bottleneck is
the resampling to ``cells`` across the box after smoothing: whatever an attacker averages over many frames (noise
and warps are fresh OS entropy every frame, never a seed) converges to that smoothed, coarse image, which is what
identity must not survive. Measured with the dlib attacker (PLATFORM.md): blur sigma 6 or noise sd 50 alone keep
identity at 93 px; the default smoothing alone is sigma ~0.15 box width (~20 px there) before resampling.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from anon_ros.core.errors import InputError
from anon_ros.core.heads import HeadBoxes


@dataclass(frozen=True)
class EnsembleConfig:
    """Strengths of the ensemble steps; 0 turns a step off, except the resampling, which is the privacy floor.

    noise_sd: Gaussian noise in grey levels before the warp. warp: max corner displacement of the random
    perspective warp (fraction of the box). smooth: Gaussian sigma (fraction of the box width).
    cells: the box width is resampled down to this many cells (lower = stronger; at most 16).
    post_noise_sd: grain added after upsampling so the region reads like camera texture, not a flat blob.
    work_px: working width of a head (fixed cost per head).
    edge_cells: grid of the box's rim (0 = the whole box gets ``cells``). core_radius: fraction of the box's
    inscribed ellipse that gets the full ``cells`` bottleneck; the weight falls linearly to the finer rim grid at the
    ellipse. Measured with the dlib attacker on real faces 40-160 px: the rim grid alone (16 cells, no core) gives
    distances >= 0.64, a flat fill of the mean colour >= 0.68, so the rim is an anonymizer in its own right; it
    keeps the head's outline, which keeps people detectable (see the retention test).
    """

    noise_sd: float = 25.0
    warp: float = 0.08
    smooth: float = 0.12
    cells: int = 4
    post_noise_sd: float = 6.0
    work_px: int = 64
    edge_cells: int = 16
    core_radius: float = 0.5

    def __post_init__(self) -> None:
        if self.noise_sd < 0 or self.post_noise_sd < 0:
            msg = f'noise_sd and post_noise_sd must be >= 0, got {self.noise_sd} and {self.post_noise_sd}'
            raise InputError(msg)
        if not 0.0 <= self.warp <= 0.3:
            msg = f'warp must be in [0, 0.3] (fraction of the head box), got {self.warp}'
            raise InputError(msg)
        if not 0.0 <= self.smooth <= 1.0:
            msg = f'smooth must be in [0, 1] (fraction of the head box), got {self.smooth}'
            raise InputError(msg)
        if not 2 <= self.cells <= 16:
            msg = f'cells must be in [2, 16]: more cells than 16 across a head keeps identity, got {self.cells}'
            raise InputError(msg)
        if self.edge_cells and not self.cells <= self.edge_cells <= 16:
            msg = f'edge_cells must be 0 (off) or in [cells, 16], got {self.edge_cells}'
            raise InputError(msg)
        if not 0.0 <= self.core_radius <= 1.0:
            msg = f'core_radius must be in [0, 1] (fraction of the box ellipse), got {self.core_radius}'
            raise InputError(msg)
        if not 16 <= self.work_px <= 256:
            msg = f'work_px must be in [16, 256], got {self.work_px}'
            raise InputError(msg)


def fresh_rng() -> np.random.Generator:
    """A generator seeded from OS entropy: a new one per frame, so no seed exists that could replay the noise."""
    return np.random.default_rng(np.random.SeedSequence())


def obfuscate_region(crop: np.ndarray, cfg: EnsembleConfig, rng: np.random.Generator) -> np.ndarray:
    """The ensemble applied to one head crop (HxWx3 uint8); returns a new crop of the same size."""
    ch, cw = crop.shape[:2]
    if ch == 0 or cw == 0:
        return crop.copy()
    ww = cfg.work_px
    wh = max(2, round(ww * ch / cw))
    interp = cv2.INTER_AREA if cw > ww else cv2.INTER_LINEAR
    work = cv2.resize(crop, (ww, wh), interpolation=interp).astype(np.float32)
    if cfg.noise_sd > 0:
        work += rng.standard_normal(work.shape, dtype=np.float32) * np.float32(cfg.noise_sd)
    if cfg.warp > 0:
        src = np.array([[0, 0], [ww, 0], [ww, wh], [0, wh]], np.float32)
        dst = src + rng.uniform(-cfg.warp, cfg.warp, (4, 2)).astype(np.float32) * np.array([ww, wh], np.float32)
        m = cv2.getPerspectiveTransform(src, dst)
        work = np.asarray(
            cv2.warpPerspective(work, m, (ww, wh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101),
            np.float32,
        )
    coarse = _resample(work, cfg.smooth * ww, cfg.cells)
    if cfg.edge_cells > cfg.cells:
        # The box's rim (margin for detection error, neck, background) keeps a finer grid, so the head's outline
        # against its surroundings survives and the person still reads as a person; the core, where the face is,
        # gets the coarse grid. The rim alone is still a strong anonymizer (see EnsembleConfig).
        fine = _resample(work, cfg.smooth * ww * cfg.cells / cfg.edge_cells, cfg.edge_cells)
        coarse = cv2.add(fine, cv2.multiply(cv2.subtract(coarse, fine), _core_weight(wh, ww, cfg.core_radius)))
    small = np.clip(coarse, 0, 255).astype(np.uint8)
    out = cv2.resize(small, (cw, ch), interpolation=cv2.INTER_LINEAR)
    if cfg.post_noise_sd > 0:
        _add_grain(out, cfg.post_noise_sd, rng)
    return out


def _resample(work: np.ndarray, sigma: float, cells: int) -> np.ndarray:
    """Smooth (sigma in working px), resample to ``cells`` across, and back up to the working size (float32).

    The smoothing runs at a reduced size (>= 2 px per cell; area averaging first), which is the same low-pass at a
    fraction of the cost of a wide kernel on the full working image."""
    wh, ww = work.shape[:2]
    f = max(1, ww // (2 * cells))
    if f > 1:
        work = cv2.resize(work, (max(1, ww // f), max(1, wh // f)), interpolation=cv2.INTER_AREA)
    if sigma > 0:
        work = cv2.GaussianBlur(work, (0, 0), sigmaX=sigma / f, borderType=cv2.BORDER_REFLECT101)
    gh = max(1, round(cells * wh / ww))
    grid = cv2.resize(work, (cells, gh), interpolation=cv2.INTER_AREA)
    return cv2.resize(grid, (ww, wh), interpolation=cv2.INTER_LINEAR)


_WEIGHTS: dict[tuple[int, int, float], np.ndarray] = {}


def _core_weight(h: int, w: int, core: float) -> np.ndarray:
    """HxWx3 float32 weight of the coarse layer: 1 inside ``core`` x the box's inscribed ellipse, 0 at its rim."""
    key = (h, w, core)
    got = _WEIGHTS.get(key)
    if got is None:
        ys = (np.arange(h, dtype=np.float32) + 0.5) / h * 2 - 1
        xs = (np.arange(w, dtype=np.float32) + 0.5) / w * 2 - 1
        r = np.sqrt(ys[:, None] ** 2 + xs[None, :] ** 2)
        wgt = np.clip((1.0 - r) / max(1.0 - core, 1e-3), 0.0, 1.0).astype(np.float32)
        got = np.ascontiguousarray(np.repeat(wgt[:, :, None], 3, axis=2))
        if len(_WEIGHTS) > 512:
            _WEIGHTS.clear()
        _WEIGHTS[key] = got
    return got


class _Grain:
    """Luminance grain (2x2 px cells, like the camera texture at half resolution) as two saturating uint8 layers.

    A bank drawn once from OS entropy, cut at a random place for every head: the grain is cosmetic (the privacy
    bottleneck is the coarse resampling under it), and cutting it is much cheaper than drawing it per head."""

    SIZE = 1024

    def __init__(self, sd: float) -> None:
        half = fresh_rng().standard_normal((self.SIZE // 2, self.SIZE // 2), dtype=np.float32) * np.float32(sd)
        g = np.repeat(np.repeat(np.rint(half), 2, axis=0), 2, axis=1)
        self.pos = np.ascontiguousarray(np.repeat(np.clip(g, 0, 255).astype(np.uint8)[:, :, None], 3, axis=2))
        self.neg = np.ascontiguousarray(np.repeat(np.clip(-g, 0, 255).astype(np.uint8)[:, :, None], 3, axis=2))


_GRAINS: dict[float, _Grain] = {}


def _add_grain(out: np.ndarray, sd: float, rng: np.random.Generator) -> None:
    grain = _GRAINS.get(sd)
    if grain is None:
        grain = _GRAINS[sd] = _Grain(sd)
    n = _Grain.SIZE
    h, w = out.shape[:2]
    for y0 in range(0, h, n):  # tile heads larger than the bank
        for x0 in range(0, w, n):
            th, tw = min(n, h - y0), min(n, w - x0)
            gy = int(rng.integers(0, (n - th) // 2 + 1)) * 2
            gx = int(rng.integers(0, (n - tw) // 2 + 1)) * 2
            roi = out[y0 : y0 + th, x0 : x0 + tw]
            cv2.add(roi, grain.pos[gy : gy + th, gx : gx + tw], dst=roi)
            cv2.subtract(roi, grain.neg[gy : gy + th, gx : gx + tw], dst=roi)


def apply_ensemble(
    rgb: np.ndarray, mask: np.ndarray, heads: HeadBoxes, cfg: EnsembleConfig, rng: np.random.Generator | None = None
) -> np.ndarray:
    """Return a copy of ``rgb`` where every masked pixel inside a head box is replaced by the ensemble output.

    Pixels outside ``mask`` are never changed. Masked pixels outside every head box (should not happen) are
    covered too, by one more pass over the mask's bounding box, so the mask is always fully honoured. Every head
    is computed from the *original* pixels, so overlapping heads never pass a processed region through twice
    (where boxes overlap, the later head's output wins; both are anonymized). Only the head boxes are touched.
    """
    if mask.shape != rgb.shape[:2] or mask.dtype != bool:
        msg = f'mask must be a bool array of shape {rgb.shape[:2]}, got {mask.dtype} {mask.shape}'
        raise InputError(msg)
    rng = fresh_rng() if rng is None else rng
    out = rgb.copy()
    h, w = mask.shape
    m8 = mask.view(np.uint8)
    rest = mask.copy()  # masked pixels no head box has covered yet
    for box in heads.boxes:
        x1, y1 = max(int(np.floor(box[0])), 0), max(int(np.floor(box[1])), 0)
        x2, y2 = min(int(np.ceil(box[2])), w), min(int(np.ceil(box[3])), h)
        if x2 <= x1 or y2 <= y1:
            continue
        m = m8[y1:y2, x1:x2]
        if not rest[y1:y2, x1:x2].any():
            continue
        region = obfuscate_region(rgb[y1:y2, x1:x2], cfg, rng)
        cv2.copyTo(region, m, out[y1:y2, x1:x2])
        rest[y1:y2, x1:x2] = False
    if rest.any():
        # Masked pixels outside every head box (a caller-made mask): cover them too, the mask is always honoured.
        ys, xs = np.nonzero(rest)
        y1, y2, x1, x2 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        region = obfuscate_region(rgb[y1:y2, x1:x2], cfg, rng)
        cv2.copyTo(region, rest[y1:y2, x1:x2].view(np.uint8), out[y1:y2, x1:x2])
    return out


def obscure_frame(rgb: np.ndarray, cells: int = 16) -> np.ndarray:
    """Fail-closed output: the whole frame resampled to ``cells`` across its long side (no face survives)."""
    if rgb.ndim != 3 or rgb.shape[0] == 0 or rgb.shape[1] == 0:
        return np.zeros((max(rgb.shape[0], 1), max(rgb.shape[1], 1), 3), np.uint8)
    h, w = rgb.shape[:2]
    s = cells / max(h, w)
    small = cv2.resize(rgb, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)
