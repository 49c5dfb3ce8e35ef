"""``camera_source``: a webcam or a video file (OpenCV) as stamped rgb8 images, for sensors without a ROS driver.

Publishes ``image`` (sensor_msgs/Image rgb8) and ``camera_info`` (intrinsics from ``fov_deg``: a nominal pinhole
model without distortion, for consumers that need one; not a calibration). Raw camera images: only an anonymizer
should subscribe to them.

* A camera (``device`` = an index such as ``0`` or a path such as ``/dev/video0``) is read in its own thread; each
  frame is stamped with the time it was read and published at once (the driver's queue is kept short so the
  stream shows the latest frame).
* A video file is paced by its own frame rate (or ``rate``): frame ``i`` is stamped ``t0 + i / fps``; with
  ``loop`` it starts again at the end, else the node stops publishing and sets ``finished``.

RGB-D sensors with ROS 2 drivers (e.g. ``realsense2_camera``) need no source node here: remap their topics onto
the anonymizer's inputs (see config/sensors.graph.yaml).
"""

from __future__ import annotations

import glob
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from rclpy.node import Node
from rclpy.qos_overriding_options import QoSOverridingOptions
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from anon_ros.conversions import fill_image
from anon_ros.core.errors import DeviceError
from anon_ros.nodes.common import IMAGE_OUT_QOS, declare, run
from carla_bridge.conversions import fill_camera_info, intrinsics_from_fov
from carla_bridge.publishers import stamp_from_ns


def is_camera(device: str) -> bool:
    """A camera index (``0``) or a V4L2 device path (``/dev/video0``) rather than a video file."""
    return device.isdigit() or device.startswith('/dev/')


def open_capture(device: str, width: int, height: int, rate: float) -> cv2.VideoCapture:
    """Open ``device`` with OpenCV, or raise DeviceError saying what is missing and what exists."""
    if is_camera(device):
        if device.startswith('/dev/') and not Path(device).exists():
            cameras = sorted(glob.glob('/dev/video*'))
            msg = f'camera {device} does not exist; cameras on this machine: {cameras or "none"}'
            raise DeviceError(msg)
        capture = cv2.VideoCapture(int(device) if device.isdigit() else device)
        if capture.isOpened():
            if width:
                capture.set(cv2.CAP_PROP_FRAME_WIDTH, width)
            if height:
                capture.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
            if rate:
                capture.set(cv2.CAP_PROP_FPS, rate)
            capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)
    else:
        if not Path(device).is_file():
            msg = f'video file {device} does not exist (device: a camera index, /dev/videoN, or a video file)'
            raise DeviceError(msg)
        capture = cv2.VideoCapture(device)
    if not capture.isOpened():
        cameras = sorted(glob.glob('/dev/video*'))
        what = 'camera' if is_camera(device) else 'video file'
        msg = f'OpenCV cannot open {what} {device!r}; cameras on this machine: {cameras or "none"}'
        raise DeviceError(msg)
    return capture


class CameraSourceNode(Node):
    """Publishes a webcam's or a video file's frames as stamped rgb8 images."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__('camera_source', **kwargs)
        self.device = declare(self, 'device', '0', 'camera index (0), camera path (/dev/video0) or video file path')
        self.width = declare(self, 'width', 0, 'output width in px (0: as captured)', min_value=0, max_value=8192)
        self.height = declare(self, 'height', 0, 'output height in px (0: as captured)', min_value=0, max_value=8192)
        self.rate = declare(self, 'rate', 0.0, 'frames per second (0: the camera default / the file frame rate)',
                            min_value=0.0, max_value=240.0)
        self.loop = declare(self, 'loop', True, 'video files: start again at the end (else stop)')
        self.fov_deg = declare(self, 'fov_deg', 70.0, 'horizontal field of view for camera_info (nominal)',
                               min_value=1.0, max_value=179.0)
        self.frame_id = declare(self, 'frame_id', 'camera', 'header.frame_id of the published images')
        qos_options = QoSOverridingOptions.with_default_policies()
        self.image_pub = self.create_publisher(Image, 'image', IMAGE_OUT_QOS, qos_overriding_options=qos_options)
        self.info_pub = self.create_publisher(CameraInfo, 'camera_info', IMAGE_OUT_QOS,
                                              qos_overriding_options=qos_options)
        self.finished = threading.Event()
        self.frames_published = 0
        self._info: CameraInfo | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._timer = None
        self.capture = open_capture(self.device, self.width, self.height, self.rate)
        if is_camera(self.device):
            self._min_period = 1.0 / self.rate if self.rate else 0.0
            self._thread = threading.Thread(target=self._camera_loop, name='camera_source', daemon=True)
            self._thread.start()
            self.get_logger().info(f'capturing camera {self.device}')
        else:
            fps = self.rate or float(self.capture.get(cv2.CAP_PROP_FPS)) or 30.0
            self.fps = fps
            self.t0_ns = self.get_clock().now().nanoseconds
            self.file_index = 0
            self._timer = self.create_timer(1.0 / fps, self._on_file_timer)
            self.get_logger().info(f'playing {self.device} at {fps:g} fps{" (looping)" if self.loop else ""}')

    def _publish(self, bgr: np.ndarray, stamp_ns: int) -> None:
        if self.width and self.height and bgr.shape[:2] != (self.height, self.width):
            bgr = cv2.resize(bgr, (self.width, self.height), interpolation=cv2.INTER_AREA)
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        header = Header(stamp=stamp_from_ns(stamp_ns), frame_id=self.frame_id)
        msg = fill_image(Image(), rgb, 'rgb8')
        msg.header = header
        self.image_pub.publish(msg)
        h, w = rgb.shape[:2]
        if self._info is None or (self._info.width, self._info.height) != (w, h):
            self._info = fill_camera_info(CameraInfo(), intrinsics_from_fov(w, h, self.fov_deg))
        self._info.header = header
        self.info_pub.publish(self._info)
        self.frames_published += 1

    def _camera_loop(self) -> None:
        last = 0.0
        while not self._stop.is_set():
            ok, bgr = self.capture.read()
            if not ok:
                self.get_logger().error(f'camera {self.device} stopped delivering frames', throttle_duration_sec=5.0)
                time.sleep(0.1)
                continue
            now = time.monotonic()
            if now - last < self._min_period:
                continue
            last = now
            self._publish(bgr, self.get_clock().now().nanoseconds)

    def _on_file_timer(self) -> None:
        ok, bgr = self.capture.read()
        if not ok and self.loop and self.file_index > 0:
            self.capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, bgr = self.capture.read()
        if not ok:
            if self._timer is not None:
                self._timer.cancel()
            self.finished.set()
            self.get_logger().info(f'{self.device}: end of video after {self.frames_published} frames')
            return
        self._publish(bgr, self.t0_ns + round(self.file_index * 1_000_000_000 / self.fps))
        self.file_index += 1

    def destroy_node(self) -> None:
        self._stop.set()
        if self._timer is not None:
            self._timer.cancel()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        capture = getattr(self, 'capture', None)
        if capture is not None:
            capture.release()
        super().destroy_node()


def main(args: Sequence[str] | None = None) -> int:
    return run(CameraSourceNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
