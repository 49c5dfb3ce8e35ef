"""SyntheticStream: moving real people at several depths, consistent ground truth, CARLA-format buffers."""

from __future__ import annotations

import numpy as np
import pytest

from anon_ros.core.errors import InputError
from anon_ros.core.scene import FAR_PLANE_M
from anon_ros.core.synthetic_stream import SyntheticStream
from carla_bridge.conversions import bgra_to_rgb, decode_depth, pedestrian_mask


@pytest.fixture(scope='module')
def stream() -> SyntheticStream:
    return SyntheticStream((240, 320), 4, seed=3, fps=10.0)


def test_frames_are_deterministic_functions_of_the_index(stream: SyntheticStream) -> None:
    a, b = stream.frame(7), SyntheticStream((240, 320), 4, seed=3, fps=10.0).frame(7)
    np.testing.assert_array_equal(a.rgb, b.rgb)
    np.testing.assert_array_equal(a.depth_m, b.depth_m)
    np.testing.assert_array_equal(a.head_mask, b.head_mask)


def test_ground_truth_is_consistent(stream: SyntheticStream) -> None:
    for index in (0, 5, 23):
        f = stream.frame(index)
        assert f.head_mask.any() and f.pedestrian_mask.any()
        assert not (f.head_mask & ~f.pedestrian_mask).any(), 'every head pixel is a pedestrian pixel'
        # People stand in front of the street: their depth is finite and below the far plane, at a few metres.
        assert (f.depth_m[f.pedestrian_mask] < 10).all()
        assert len(f.person_ids) == len(f.head_boxes) >= 1
        for x1, y1, x2, y2 in f.head_boxes.astype(int):
            assert 0 <= x1 < x2 <= 320 and 0 <= y1 < y2 <= 240
        assert (f.depth_m[~f.pedestrian_mask] <= FAR_PLANE_M).all()


def test_people_stand_at_several_depths(stream: SyntheticStream) -> None:
    f = stream.frame(0)
    head_depths = {round(float(np.median(f.depth_m[int(y1):int(y2), int(x1):int(x2)][
        f.head_mask[int(y1):int(y2), int(x1):int(x2)]])), 1) for x1, y1, x2, y2 in f.head_boxes if True}
    assert len(head_depths) >= 3


def test_people_move(stream: SyntheticStream) -> None:
    a, b = stream.frame(0), stream.frame(10)  # one second apart
    common = np.intersect1d(a.person_ids, b.person_ids)
    assert len(common) >= 2
    moved = [
        abs(a.head_boxes[list(a.person_ids).index(k)][0] - b.head_boxes[list(b.person_ids).index(k)][0])
        for k in common
    ]
    assert max(moved) > 5, f'heads moved by {moved} px in 1 s'


def test_carla_frame_decodes_back(stream: SyntheticStream) -> None:
    f = stream.frame(4)
    rgb_raw, depth_raw, semantic_raw = f.carla_frame()
    assert rgb_raw.shape == depth_raw.shape == semantic_raw.shape == (240, 320, 4)
    np.testing.assert_array_equal(bgra_to_rgb(rgb_raw.tobytes(), 320, 240), f.rgb)
    np.testing.assert_allclose(decode_depth(depth_raw.tobytes(), 320, 240), f.depth_m, atol=1e-3)
    np.testing.assert_array_equal(pedestrian_mask(semantic_raw.tobytes(), 320, 240) == 255, f.pedestrian_mask)


def test_no_people() -> None:
    f = SyntheticStream((64, 64), 0, seed=0, fps=5).frame(3)
    assert not f.head_mask.any() and not f.pedestrian_mask.any()
    assert f.head_boxes.shape == (0, 4)


@pytest.mark.parametrize(('size', 'n', 'fps'), [((16, 64), 1, 5.0), ((64, 64), -1, 5.0), ((64, 64), 1, 0.0)])
def test_bad_arguments(size: tuple[int, int], n: int, fps: float) -> None:
    with pytest.raises(InputError):
        SyntheticStream(size, n, seed=0, fps=fps)
