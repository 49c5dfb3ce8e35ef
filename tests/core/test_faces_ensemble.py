"""The face ensemble: only masked pixels change, randomness is fresh, strength follows the head."""

from __future__ import annotations

import numpy as np
import pytest

from anon_ros.core.ensemble import EnsembleConfig, apply_ensemble, fresh_rng, obfuscate_region, obscure_frame
from anon_ros.core.errors import InputError
from anon_ros.core.heads import HeadBoxes


def textured(h: int, w: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def one_head(box: tuple[int, int, int, int]) -> HeadBoxes:
    return HeadBoxes(np.asarray([box], np.float32), np.ones(1, np.float32), np.zeros(1, np.int8))


@pytest.mark.parametrize('size', [(20, 16), (64, 48), (300, 240)])
def test_only_masked_pixels_change(size: tuple[int, int]) -> None:
    img = textured(400, 400)
    h, w = size
    box = (50, 60, 50 + w, 60 + h)
    mask = np.zeros((400, 400), bool)
    mask[60 : 60 + h, 50 : 50 + w] = True
    mask[60 : 60 + h // 2, 50 : 50 + w // 2] = False  # background inside the box stays raw
    out = apply_ensemble(img, mask, one_head(box), EnsembleConfig())
    assert np.array_equal(out[~mask], img[~mask])
    assert np.mean(out[mask] != img[mask]) > 0.9


def test_mask_outside_every_box_is_still_honoured() -> None:
    img = textured(100, 100)
    mask = np.zeros((100, 100), bool)
    mask[5:30, 5:30] = True
    out = apply_ensemble(img, mask, HeadBoxes.empty(), EnsembleConfig())
    assert np.mean(out[mask] != img[mask]) > 0.9


def test_output_destroys_detail_and_is_fresh_each_call() -> None:
    img = textured(128, 96)
    a = obfuscate_region(img, EnsembleConfig(), fresh_rng())
    b = obfuscate_region(img, EnsembleConfig(), fresh_rng())
    assert not np.array_equal(a, b)  # OS entropy per call
    # Averaging many outputs converges to a smooth image: no pixel-level texture of the input survives.
    mean = np.mean([obfuscate_region(img, EnsembleConfig(), fresh_rng()).astype(np.float32) for _ in range(30)], axis=0)
    corr = np.corrcoef(mean[..., 0].ravel(), img[..., 0].astype(np.float32).ravel())[0, 1]
    assert abs(corr) < 0.2


def test_strength_is_relative_to_the_head() -> None:
    # A two-tone face: the coarse structure (which half is dark) survives at any size, fine detail does not.
    for s in (24, 240):
        img = np.zeros((s, s, 3), np.uint8)
        img[:, s // 2 :] = 255
        out = obfuscate_region(img, EnsembleConfig(noise_sd=0, warp=0, post_noise_sd=0), fresh_rng()).astype(int)
        assert out[:, : s // 8].mean() < 100 and out[:, -s // 8 :].mean() > 155


def test_empty_and_bad_inputs() -> None:
    assert obfuscate_region(np.zeros((0, 5, 3), np.uint8), EnsembleConfig(), fresh_rng()).shape == (0, 5, 3)
    with pytest.raises(InputError, match='mask must be a bool array'):
        apply_ensemble(textured(10, 10), np.zeros((10, 11), bool), HeadBoxes.empty(), EnsembleConfig())


@pytest.mark.parametrize('kwargs', [{'cells': 32}, {'cells': 1}, {'noise_sd': -1}, {'warp': 0.5}, {'work_px': 8}])
def test_config_validation(kwargs: dict[str, float]) -> None:
    with pytest.raises(InputError):
        EnsembleConfig(**kwargs)  # type: ignore[arg-type]


def test_obscure_frame_leaves_nothing_recognisable() -> None:
    img = textured(720, 1280)
    out = obscure_frame(img)
    assert out.shape == img.shape
    assert len(np.unique(out.reshape(-1, 3), axis=0)) <= 16 * 9
