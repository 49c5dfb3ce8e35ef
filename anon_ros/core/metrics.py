"""Privacy and speed figures shared by the demo, the evaluation suite and the benchmarks. No ROS."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from anon_ros.core.errors import InputError


@dataclass(frozen=True)
class HeadCoverage:
    """How much of the ground-truth head area of one frame the anonymizer replaced.

    A ground-truth head pixel outside the anonymization mask is a raw head pixel: the anonymizer leaves pixels
    outside its mask untouched, byte for byte.
    """

    head_pixels: int
    covered_pixels: int

    @property
    def raw_pixels(self) -> int:
        return self.head_pixels - self.covered_pixels

    @property
    def fraction(self) -> float:
        return self.covered_pixels / self.head_pixels if self.head_pixels else 1.0


def head_coverage(ground_truth: np.ndarray, anonymized_mask: np.ndarray) -> HeadCoverage:
    """Compare a boolean ground-truth head mask with the anonymizer's mask (both HxW)."""
    if ground_truth.shape != anonymized_mask.shape:
        msg = f'ground-truth mask {ground_truth.shape} and anonymization mask {anonymized_mask.shape} differ in size'
        raise InputError(msg)
    gt = ground_truth.astype(bool)
    return HeadCoverage(int(gt.sum()), int(np.count_nonzero(gt & anonymized_mask.astype(bool))))


@dataclass
class CoverageTally:
    """Head coverage over a stream: pixel totals and the frames in which any head pixel stayed raw."""

    frames: int = 0
    head_pixels: int = 0
    covered_pixels: int = 0
    frames_with_raw_head_pixels: list[int] = field(default_factory=list)
    raw_pixels_per_frame: list[int] = field(default_factory=list)  # beside frames_with_raw_head_pixels

    def add(self, coverage: HeadCoverage, frame_id: int) -> None:
        self.frames += 1
        self.head_pixels += coverage.head_pixels
        self.covered_pixels += coverage.covered_pixels
        if coverage.raw_pixels:
            self.frames_with_raw_head_pixels.append(frame_id)
            self.raw_pixels_per_frame.append(coverage.raw_pixels)

    @property
    def fraction(self) -> float:
        return self.covered_pixels / self.head_pixels if self.head_pixels else 1.0


def percentiles(values: list[float] | np.ndarray, qs: tuple[float, ...] = (50, 95)) -> dict[str, float]:
    """``{'p50': ..., 'p95': ...}`` of ``values`` (NaN when empty)."""
    arr = np.asarray(values, dtype=float)
    return {f'p{q:g}': float(np.percentile(arr, q)) if arr.size else float('nan') for q in qs}
