"""carla_bridge.conversions on CARLA-format buffers (BGRA bytes as ``carla.Image.raw_data`` delivers them)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sensor_msgs.msg import CameraInfo

from carla_bridge.conversions import (
    DEPTH_SCALE,
    FAR_PLANE_M,
    PEDESTRIAN_TAG,
    bgra_to_rgb,
    decode_depth,
    encode_depth,
    encode_rgb,
    encode_tags,
    fill_camera_info,
    intrinsics_from_fov,
    pedestrian_mask,
    semantic_tags,
)
from carla_bridge.errors import CarlaFormatError


def _raw(pixels: list[list[tuple[int, int, int, int]]]) -> bytes:
    """BGRA pixels (rows of (B, G, R, A)) as the bytes of a carla.Image.raw_data."""
    return np.array(pixels, np.uint8).tobytes()


@pytest.mark.parametrize(
    ('bgra', 'metres'),
    [
        ((0, 0, 0, 255), 0.0),  # nearest
        ((255, 255, 255, 255), FAR_PLANE_M),  # the far plane: code 256**3 - 1 is exactly 1000 m
        ((0, 0, 1, 255), 1000.0 / DEPTH_SCALE),  # one R step: the resolution, ~0.06 mm
        ((0, 1, 0, 255), 256 * 1000.0 / DEPTH_SCALE),  # one G step = 256 R steps
        ((1, 0, 0, 255), 65536 * 1000.0 / DEPTH_SCALE),  # one B step = 256**2 R steps, ~3.9 m
        ((0, 0x80, 0, 255), 32768 * 1000.0 / DEPTH_SCALE),
        ((0x0A, 0x3D, 0x71, 255), (0x71 + 0x3D * 256 + 0x0A * 65536) * 1000.0 / DEPTH_SCALE),  # ~40.9 m
    ],
)
def test_depth_formula_at_known_values(bgra: tuple[int, int, int, int], metres: float) -> None:
    depth = decode_depth(_raw([[bgra]]), 1, 1)
    assert depth.dtype == np.float32 and depth.shape == (1, 1)
    assert depth[0, 0] == pytest.approx(metres, rel=1e-6, abs=1e-7)


def test_depth_is_read_from_r_g_b_not_a() -> None:
    # Alpha carries nothing: two pixels differing only in A decode to the same depth.
    depth = decode_depth(_raw([[(1, 2, 3, 0), (1, 2, 3, 255)]]), 2, 1)
    expected = (3 + 2 * 256 + 1 * 65536) / DEPTH_SCALE * 1000.0
    np.testing.assert_allclose(depth, [[expected, expected]], rtol=1e-6)


def test_depth_round_trip_within_quantisation() -> None:
    rng = np.random.default_rng(0)
    depth = rng.uniform(0, FAR_PLANE_M, (7, 5)).astype(np.float32)
    depth[0, 0], depth[0, 1], depth[0, 2] = FAR_PLANE_M, 2000.0, np.nan  # beyond the far plane clips to it
    decoded = decode_depth(encode_depth(depth).tobytes(), 5, 7)
    expected = np.clip(np.nan_to_num(depth, nan=FAR_PLANE_M), 0, FAR_PLANE_M)
    np.testing.assert_allclose(decoded, expected, atol=1e-3)  # float32 at 1000 m: ~6e-5 m spacing
    assert decoded[0, 0] == FAR_PLANE_M and decoded[0, 1] == FAR_PLANE_M and decoded[0, 2] == FAR_PLANE_M


def test_bgra_to_rgb_swaps_channels_and_drops_alpha() -> None:
    rgb = bgra_to_rgb(_raw([[(10, 20, 30, 255), (0, 0, 255, 7)], [(255, 0, 0, 0), (1, 2, 3, 4)]]), 2, 2)
    assert rgb.dtype == np.uint8 and rgb.shape == (2, 2, 3) and rgb.flags.c_contiguous
    np.testing.assert_array_equal(rgb, [[[30, 20, 10], [255, 0, 0]], [[0, 0, 255], [3, 2, 1]]])


@pytest.mark.parametrize(('height', 'width'), [(1, 1), (3, 5), (480, 640)])
def test_rgb_round_trip(height: int, width: int) -> None:
    rgb = np.random.default_rng(1).integers(0, 256, (height, width, 3), dtype=np.uint8)
    raw = encode_rgb(rgb)
    assert (raw[:, :, 3] == 255).all()
    np.testing.assert_array_equal(bgra_to_rgb(raw.tobytes(), width, height), rgb)


def test_pedestrian_mask_is_tag_12_in_r() -> None:
    # Tag 12 in R is a pedestrian; 12 in G or B is not; other tags (4 = 0.9.15's pedestrian tag, 11 sky) are not.
    raw = _raw([[(0, 0, 12, 255), (12, 0, 0, 255), (0, 12, 0, 255)], [(0, 0, 4, 255), (0, 0, 11, 255), (0, 0, 12, 0)]])
    mask = pedestrian_mask(raw, 3, 2)
    assert mask.dtype == np.uint8
    np.testing.assert_array_equal(mask, [[255, 0, 0], [0, 0, 255]])
    assert PEDESTRIAN_TAG == 12
    np.testing.assert_array_equal(semantic_tags(raw, 3, 2), [[12, 0, 0], [4, 11, 12]])


def test_tags_round_trip() -> None:
    tags = np.random.default_rng(2).integers(0, 29, (4, 6), dtype=np.uint8)
    raw = encode_tags(tags).tobytes()
    np.testing.assert_array_equal(semantic_tags(raw, 6, 4), tags)
    np.testing.assert_array_equal(pedestrian_mask(raw, 6, 4) == 255, tags == 12)


@pytest.mark.parametrize('decoder', [bgra_to_rgb, decode_depth, semantic_tags, pedestrian_mask])
def test_wrong_buffer_size_is_rejected_with_sizes(decoder) -> None:  # noqa: ANN001
    with pytest.raises(CarlaFormatError, match=r'has 12 bytes; expected .* 2 \* 2 \* 4 = 16'):
        decoder(bytes(12), 2, 2)


@pytest.mark.parametrize(
    ('width', 'height', 'fov', 'focal'),
    [
        (800, 600, 90.0, 400.0),  # CARLA's default camera: f = w / 2 at 90 degrees
        (1280, 720, 90.0, 640.0),
        (640, 480, 60.0, 320.0 / math.tan(math.radians(30))),
        (100, 100, 120.0, 50.0 / math.tan(math.radians(60))),
    ],
)
def test_intrinsics_from_fov(width: int, height: int, fov: float, focal: float) -> None:
    k = intrinsics_from_fov(width, height, fov)
    assert (k.fx, k.fy) == (pytest.approx(focal), pytest.approx(focal))
    assert (k.cx, k.cy) == (width / 2, height / 2)
    # A point on the image edge is at half the field of view.
    assert math.degrees(math.atan((width - k.cx) / k.fx)) == pytest.approx(fov / 2)


@pytest.mark.parametrize('fov', [0.0, 180.0, -10.0])
def test_intrinsics_reject_impossible_fov(fov: float) -> None:
    with pytest.raises(CarlaFormatError, match='field of view'):
        intrinsics_from_fov(640, 480, fov)


def test_fill_camera_info() -> None:
    info = fill_camera_info(CameraInfo(), intrinsics_from_fov(800, 600, 90.0))
    assert (info.width, info.height, info.distortion_model) == (800, 600, 'plumb_bob')
    np.testing.assert_allclose(info.k, [400, 0, 400, 0, 400, 300, 0, 0, 1])
    np.testing.assert_allclose(info.p, [400, 0, 400, 0, 0, 400, 300, 0, 0, 0, 1, 0])
    np.testing.assert_allclose(info.r, np.eye(3).ravel())
    assert list(info.d) == [0.0] * 5
