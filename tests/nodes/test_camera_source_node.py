"""camera_source through a real rclpy graph: a video file paced by its fps, looping; clear errors for devices."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from rclpy.parameter import Parameter
from sensor_msgs.msg import CameraInfo, Image

from anon_ros.conversions import image_to_array
from anon_ros.core.errors import DeviceError
from anon_ros.nodes.camera_source import CameraSourceNode
from anon_ros.testing.ros_graph import wait_until


def write_video(path: Path, frames: int = 6, fps: float = 20.0, size: tuple[int, int] = (64, 48)) -> Path:
    """A small MJPG AVI whose frame i is a flat colour with blue = 40 * i (BGR), for checking order."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'MJPG'), fps, size)
    assert writer.isOpened()
    for i in range(frames):
        writer.write(np.full((size[1], size[0], 3), (40 * i, 0, 200), np.uint8))
    writer.release()
    return path


def _source(graph, **params: object) -> CameraSourceNode:  # noqa: ANN001
    overrides = [Parameter(k, value=v) for k, v in params.items()]
    return graph.add(CameraSourceNode(context=graph.context, parameter_overrides=overrides))


def _ns(stamp: object) -> int:
    return stamp.sec * 1_000_000_000 + stamp.nanosec  # type: ignore[attr-defined]


def test_video_file_paced_by_fps_and_looping(ros_graph, tmp_path) -> None:  # noqa: ANN001
    video = write_video(tmp_path / 'clip.avi')
    io = ros_graph.node('camera_test_io')
    images: list[Image] = []
    infos: list[CameraInfo] = []
    io.create_subscription(Image, 'image', images.append, 50)
    io.create_subscription(CameraInfo, 'camera_info', infos.append, 50)
    source = _source(ros_graph, device=str(video), loop=True, width=32, height=24)
    assert wait_until(lambda: len(images) >= 9, 10), len(images)
    first = images[0]
    assert (first.encoding, first.width, first.height, first.header.frame_id) == ('rgb8', 32, 24, 'camera')
    # BGR (40 i, 0, 200) in the file is RGB (200, 0, 40 i) on the topic.
    rgb = image_to_array(first)
    assert abs(int(rgb[..., 0].mean()) - 200) < 12 and rgb[..., 1].mean() < 12
    # Stamped t0 + i / 20 fps, and the file loops after 6 frames (the blue ramp restarts).
    offsets = [_ns(m.header.stamp) - source.t0_ns for m in images]
    assert offsets == [round(i * 1e9 / 20) for i in range(len(images))]
    blue = [int(image_to_array(m)[..., 2].mean()) for m in images[:8]]
    assert blue[6] < blue[5] and abs(blue[6] - blue[0]) < 12, blue
    assert infos and infos[0].width == 32


def test_video_without_loop_finishes(ros_graph, tmp_path) -> None:  # noqa: ANN001
    source = _source(ros_graph, device=str(write_video(tmp_path / 'clip.avi', frames=3)), loop=False)
    assert wait_until(source.finished.is_set, 10)
    assert source.frames_published == 3


@pytest.mark.parametrize(('device', 'message'), [
    ('/dev/video77', r'camera /dev/video77 does not exist; cameras on this machine'),
    ('/no/such/clip.mp4', r'video file /no/such/clip.mp4 does not exist'),
])
def test_missing_device_is_a_clear_error(ros_graph, device: str, message: str) -> None:  # noqa: ANN001
    with pytest.raises(DeviceError, match=message):
        _source(ros_graph, device=device)


def test_unreadable_video_is_a_clear_error(ros_graph, tmp_path) -> None:  # noqa: ANN001
    bad = tmp_path / 'not_a_video.mp4'
    bad.write_bytes(b'no video here')
    with pytest.raises(DeviceError, match='OpenCV cannot open video file'):
        _source(ros_graph, device=str(bad))
