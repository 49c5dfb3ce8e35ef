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
    """

    noise_sd: float = 25.0
    warp: float = 0.08
    smooth: float = 0.12
    cells: int = 6
    post_noise_sd: float = 6.0
    work_px: int = 64

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
        src = np.float32([[0, 0], [ww, 0], [ww, wh], [0, wh]])
        dst = src + rng.uniform(-cfg.warp, cfg.warp, (4, 2)).astype(np.float32) * np.float32([ww, wh])
        m = cv2.getPerspectiveTransform(src, dst)
        work = cv2.warpPerspective(work, m, (ww, wh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
    if cfg.smooth > 0:
        work = cv2.GaussianBlur(work, (0, 0), sigmaX=cfg.smooth * ww, borderType=cv2.BORDER_REFLECT101)
    gw = cfg.cells
    gh = max(1, round(cfg.cells * wh / ww))
    coarse = np.clip(cv2.resize(work, (gw, gh), interpolation=cv2.INTER_AREA), 0, 255).astype(np.uint8)
    out = cv2.resize(coarse, (cw, ch), interpolation=cv2.INTER_LINEAR)
    if cfg.post_noise_sd > 0:
        # Luminance grain at half resolution (4x fewer samples; the grain carries no identity either way).
        gh2, gw2 = max(1, (ch + 1) // 2), max(1, (cw + 1) // 2)
        grain = rng.standard_normal((gh2, gw2), dtype=np.float32) * np.float32(cfg.post_noise_sd)
        grain = cv2.cvtColor(cv2.resize(grain, (cw, ch), interpolation=cv2.INTER_NEAREST), cv2.COLOR_GRAY2RGB)
        out = cv2.add(out, grain, dtype=cv2.CV_8U)  # saturating uint8 + float32
    return out


def apply_ensemble(
    rgb: np.ndarray, mask: np.ndarray, heads: HeadBoxes, cfg: EnsembleConfig, rng: np.random.Generator | None = None
) -> np.ndarray:
    """Return a copy of ``rgb`` where every masked pixel inside a head box is replaced by the ensemble output.

    Pixels outside ``mask`` are never changed. Masked pixels outside every head box (should not happen) are
    covered too, by one more pass over the mask's bounding box, so the mask is always fully honoured.
    """
    if mask.shape != rgb.shape[:2] or mask.dtype != bool:
        msg = f'mask must be a bool array of shape {rgb.shape[:2]}, got {mask.dtype} {mask.shape}'
        raise InputError(msg)
    rng = fresh_rng() if rng is None else rng
    out = rgb.copy()
    h, w = mask.shape
    done = np.zeros_like(mask)
    covered = 0
    for box in heads.boxes:
        x1, y1 = max(int(np.floor(box[0])), 0), max(int(np.floor(box[1])), 0)
        x2, y2 = min(int(np.ceil(box[2])), w), min(int(np.ceil(box[3])), h)
        if x2 <= x1 or y2 <= y1:
            continue
        m = mask[y1:y2, x1:x2] & ~done[y1:y2, x1:x2]
        n = int(np.count_nonzero(m))
        if n == 0:
            continue
        # Source from the *original* pixels so overlapping heads never pass a processed region through twice.
        region = obfuscate_region(rgb[y1:y2, x1:x2], cfg, rng)
        np.copyto(out[y1:y2, x1:x2], region, where=m[:, :, None])
        done[y1:y2, x1:x2] |= m
        covered += n
    if covered != int(np.count_nonzero(mask)):
        # Masked pixels outside every head box (a caller-made mask): cover them too, the mask is always honoured.
        rest = mask & ~done
        ys, xs = np.nonzero(rest)
        y1, y2, x1, x2 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        region = obfuscate_region(rgb[y1:y2, x1:x2], cfg, rng)
        np.copyto(out[y1:y2, x1:x2], region, where=rest[y1:y2, x1:x2, None])
    return out


def obscure_frame(rgb: np.ndarray, cells: int = 16) -> np.ndarray:
    """Fail-closed output: the whole frame resampled to ``cells`` across its long side (no face survives)."""
    if rgb.ndim != 3 or rgb.shape[0] == 0 or rgb.shape[1] == 0:
        return np.zeros((max(rgb.shape[0], 1), max(rgb.shape[1], 1), 3), np.uint8)
    h, w = rgb.shape[:2]
    s = cells / max(h, w)
    small = cv2.resize(rgb, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)
