"""Depth-range masking: encodings, unusable depth, size mismatches, region shapes."""

from __future__ import annotations

import numpy as np
import pytest

from anon_ros.core.depth_mask import (
    DepthEncoding,
    DepthMaskConfig,
    RegionShape,
    align_depth,
    check_depth,
    depth_to_metres,
    head_masks,
)
from anon_ros.core.errors import InputError
from anon_ros.core.heads import HeadBoxes

BOX_CFG = DepthMaskConfig(shape=RegionShape.BOX, dilate_rel=0.0)


def heads(*boxes: tuple[float, float, float, float]) -> HeadBoxes:
    b = np.asarray(boxes, np.float32).reshape(-1, 4)
    return HeadBoxes(b, np.ones(len(b), np.float32), np.zeros(len(b), np.int8))


def scene(h: int = 120, w: int = 160, head_d: float = 2.0, bg_d: float = 8.0) -> np.ndarray:
    """A head disc at head_d in front of a wall at bg_d (metres)."""
    d = np.full((h, w), bg_d, np.float32)
    yy, xx = np.mgrid[:h, :w]
    d[(yy - 60) ** 2 + (xx - 80) ** 2 <= 20**2] = head_d
    return d


def encode(d: np.ndarray, enc: DepthEncoding) -> np.ndarray:
    if enc is DepthEncoding.FLOAT32_M:
        return d.astype(np.float32)
    mm = np.where(np.isfinite(d), np.round(d * 1000), 0)
    return np.clip(mm, 0, 65535).astype(np.uint16)


@pytest.mark.parametrize('enc', list(DepthEncoding))
@pytest.mark.parametrize('size', [(120, 160), (240, 320)])
def test_band_keeps_head_and_drops_background(enc: DepthEncoding, size: tuple[int, int]) -> None:
    d = scene()
    if size != d.shape:
        d = align_depth(d, size)
    sy, sx = size[0] / 120, size[1] / 160
    box = (50 * sx, 30 * sy, 110 * sx, 90 * sy)
    mask = head_masks(encode(d, enc), heads(box), size, BOX_CFG, enc)
    head = d <= 2.0
    assert mask[head].all()  # every head pixel is masked
    assert not mask[~head].any()  # the wall behind stays untouched
    assert not mask[: int(30 * sy)].any()  # nothing outside the box


@pytest.mark.parametrize(
    ('enc', 'bad'),
    [(DepthEncoding.FLOAT32_M, b) for b in ('nan', 'inf', 'zero', 'far_plane')]
    + [(DepthEncoding.UINT16_MM, b) for b in ('zero', 'saturated')],
)
def test_unusable_depth_never_shrinks_the_mask(enc: DepthEncoding, bad: str) -> None:
    d = scene()
    raw = encode(d, enc)
    value = {'nan': np.nan, 'inf': np.inf, 'zero': 0, 'far_plane': 1000.0, 'saturated': 65535}[bad]
    raw[:, :40] = value  # a band of unusable depth crossing the box
    raw[55:65, 75:85] = value  # and a hole in the face itself
    box = (30, 30, 110, 90)
    mask = head_masks(raw, heads(box), raw.shape, BOX_CFG, enc)
    assert mask[30:90, 30:40].all()
    assert mask[55:65, 75:85].all()


@pytest.mark.parametrize('enc', list(DepthEncoding))
def test_all_unusable_depth_masks_whole_box(enc: DepthEncoding) -> None:
    raw = np.zeros((100, 100), np.float32 if enc is DepthEncoding.FLOAT32_M else np.uint16)
    mask = head_masks(raw, heads((10, 20, 50, 70)), (100, 100), BOX_CFG, enc)
    assert mask[20:70, 10:50].all() and mask.sum() == 40 * 50


def test_no_depth_masks_whole_region_and_ellipse_is_head_shaped() -> None:
    box_mask = head_masks(None, heads((10, 10, 50, 70)), (100, 100), BOX_CFG)
    assert box_mask.sum() == 40 * 60
    ell = head_masks(None, heads((10, 10, 50, 70)), (100, 100), DepthMaskConfig())
    assert ell[40, 30] and not ell[10, 10]  # centre in, corner out
    assert 0.75 < ell.sum() / box_mask.sum() < 1.0


def test_occluder_in_front_is_masked_not_the_background() -> None:
    d = scene()
    d[70:90, 60:100] = 1.0  # a hand in front of the chin
    mask = head_masks(d, heads((50, 30, 110, 90)), d.shape, BOX_CFG)
    assert mask[70:90, 60:100].all()


def test_16uc1_and_32fc1_agree() -> None:
    d = scene()
    m32 = head_masks(encode(d, DepthEncoding.FLOAT32_M), heads((50, 30, 110, 90)), d.shape, DepthMaskConfig())
    m16 = head_masks(encode(d, DepthEncoding.UINT16_MM), heads((50, 30, 110, 90)), d.shape, DepthMaskConfig(), '16UC1')
    assert np.array_equal(m32, m16)


def test_conversion_marks_unusable_values() -> None:
    m = depth_to_metres(np.array([[0, 1500, 65535]], np.uint16), '16UC1')
    assert np.isnan(m[0, 0]) and m[0, 1] == pytest.approx(1.5) and np.isnan(m[0, 2])
    f = depth_to_metres(np.array([[np.nan, np.inf, -1.0, 1000.0, 3.0]], np.float32), DepthEncoding.FLOAT32_M)
    assert np.isnan(f[0, :4]).all() and f[0, 4] == 3.0


@pytest.mark.parametrize(
    ('depth', 'enc', 'match'),
    [
        (np.zeros((4, 4), np.uint16), '32FC1', 'float32 metres'),
        (np.zeros((4, 4), np.float32), '16UC1', 'uint16 millimetres'),
        (np.zeros((4, 4, 3), np.float32), '32FC1', 'HxW'),
        (np.zeros((4, 4), np.float32), 'rgb8', 'encoding must be one of'),
    ],
)
def test_bad_depth_rejected_with_message(depth: np.ndarray, enc: str, match: str) -> None:
    with pytest.raises(InputError, match=match):
        check_depth(depth, enc)


def test_size_mismatch_scaled_is_aligned_other_aspect_rejected() -> None:
    d = scene()
    assert align_depth(d, (240, 320)).shape == (240, 320)
    assert align_depth(d, (60, 80))[30, 40] == 2.0
    with pytest.raises(InputError, match='aspect'):
        align_depth(d, (120, 120))
    with pytest.raises(InputError, match='align'):
        head_masks(d, heads((0, 0, 10, 10)), (240, 320), BOX_CFG)


def test_empty_heads_and_degenerate_boxes() -> None:
    assert not head_masks(scene(), HeadBoxes.empty(), (120, 160), DepthMaskConfig()).any()
    assert not head_masks(scene(), heads((500, 500, 600, 600)), (120, 160), DepthMaskConfig()).any()


@pytest.mark.parametrize('kwargs', [{'back_m': 0}, {'min_fill': 2}, {'ellipse_scale': 0.9}, {'shape': 'box'}])
def test_config_validation(kwargs: dict[str, object]) -> None:
    with pytest.raises(InputError):
        DepthMaskConfig(**kwargs)  # type: ignore[arg-type]


def test_far_head_partly_hidden_behind_a_nearer_person_stays_masked() -> None:
    """The box's centre lands on a nearer person (the anchor), yet the far head's own visible pixels are masked;
    the background that surrounds it is not."""
    d = np.full((120, 160), 10.0, np.float32)
    yy, xx = np.mgrid[:120, :160]
    head = ((yy - 60) ** 2 + (xx - 80) ** 2 <= 20**2)
    d[head] = 3.2
    d[:, 78:] = 1.2  # a nearer person hides the head's right half and the box's centre
    head &= d == 3.2
    mask = head_masks(d, heads((50, 30, 110, 90)), d.shape, BOX_CFG)
    assert mask[head].all()
    assert mask[:, 78:110][30:90].all()  # the occluder too (fail closed)
    assert not mask[30:90, 50:78][d[30:90, 50:78] == 10.0].any()  # the surrounding background stays untouched


def test_head_box_cut_by_the_side_border_reaches_further_there() -> None:
    """A head box clipped at the right border came from a person cut there: its head may go on past the box's
    corners, so towards that side the ellipse reaches further (the walking stream left 2 px of such a head raw);
    the side away from the border keeps the plain ellipse."""
    cfg = DepthMaskConfig()
    inside = head_masks(None, heads((60, 20, 120, 100)), (120, 200), cfg)
    cut = head_masks(None, heads((60, 20, 120, 100)), (120, 120), cfg)  # the same box, its right side on the border
    assert cut[:, 119].sum() > inside[:, 119].sum()
    assert np.array_equal(cut[:, :90], inside[:, :90])


def test_flatten_depth_makes_each_head_one_value_and_keeps_the_rest() -> None:
    from anon_ros.core.depth_mask import flatten_depth

    depth = np.full((60, 80), 4000, np.uint16)  # 16UC1 millimetres
    depth[10:20, 10:20] = np.arange(100, dtype=np.uint16).reshape(10, 10) + 1500  # a face's relief
    depth[12, 12] = 0  # no return: not the head's depth
    depth[40:50, 50:60] = 0  # a head with no depth at all
    mask = np.zeros((120, 160), bool)  # at the RGB size (twice the depth's)
    mask[20:40, 20:40] = True
    mask[80:100, 100:120] = True
    out = flatten_depth(depth, mask, margin_px=0)
    assert out.dtype == np.uint16 and out.shape == depth.shape
    assert np.all(out[10:20, 10:20] == out[10, 10]) and 1500 <= out[10, 10] <= 1600
    assert np.all(out[40:50, 50:60] == 0)  # nothing valid: invalid as a whole
    rest = np.ones(depth.shape, bool)
    rest[10:20, 10:20] = rest[40:50, 50:60] = False
    assert np.array_equal(out[rest], depth[rest])
    metres = np.where(depth > 0, depth / 1000.0, np.nan).astype(np.float32)
    assert np.isnan(flatten_depth(metres, mask, margin_px=0)[40:50, 50:60]).all()
    grown = flatten_depth(metres, mask, margin_px=1)  # the margin (depth px) is flattened too
    assert np.all(grown[9:21, 9:21] == grown[15, 15]) and 1.5 <= grown[15, 15] <= 1.6
    with pytest.raises(InputError):
        flatten_depth(depth[..., None], mask)
