"""The camera topics CARLA-format sources publish: one place, so the CARLA bridge and the synthetic source match.

Relative topic names (remap them in launch/config):

* ``image`` (sensor_msgs/Image rgb8): raw camera colour. Raw: only an anonymizer should subscribe to it.
* ``depth`` (sensor_msgs/Image 32FC1): metres along the optical axis, same pose, size and field of view.
* ``camera_info`` (sensor_msgs/CameraInfo): intrinsics from the field of view.
* ``ground_truth/pedestrian_mask`` (sensor_msgs/Image mono8): 255 where the semantic camera sees a pedestrian.

All share one header (stamp, frame_id) per frame. Reliable, keep-last 2: sensor-data (best effort) subscribers
match it too, and recorders get every frame.
"""

from __future__ import annotations

import numpy as np
from builtin_interfaces.msg import Time
from rclpy.node import Node
from rclpy.qos_overriding_options import QoSOverridingOptions
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from anon_ros.conversions import fill_image
from anon_ros.nodes.common import IMAGE_OUT_QOS
from carla_bridge.conversions import Intrinsics, bgra_to_rgb, decode_depth, fill_camera_info, pedestrian_mask


def stamp_from_ns(ns: int) -> Time:
    """builtin_interfaces/Time from integer nanoseconds."""
    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


class CarlaCameraPublishers:
    """Publishers of one RGB + depth + semantic camera trio, fed with CARLA raw (BGRA) buffers."""

    def __init__(self, node: Node, intrinsics: Intrinsics, frame_id: str) -> None:
        self.intrinsics = intrinsics
        self.frame_id = frame_id
        qos_options = QoSOverridingOptions.with_default_policies()

        def publisher(msg_type: type, topic: str):  # noqa: ANN202 - rclpy Publisher
            return node.create_publisher(msg_type, topic, IMAGE_OUT_QOS, qos_overriding_options=qos_options)

        self.image = publisher(Image, 'image')
        self.depth = publisher(Image, 'depth')
        self.camera_info = publisher(CameraInfo, 'camera_info')
        self.pedestrian_mask = publisher(Image, 'ground_truth/pedestrian_mask')
        self._info = fill_camera_info(CameraInfo(), intrinsics)

    def header(self, stamp_ns: int) -> Header:
        return Header(stamp=stamp_from_ns(stamp_ns), frame_id=self.frame_id)

    def publish_carla(
        self,
        stamp_ns: int,
        rgb_raw: bytes | memoryview | np.ndarray,
        depth_raw: bytes | memoryview | np.ndarray,
        semantic_raw: bytes | memoryview | np.ndarray,
    ) -> Header:
        """Decode the three CARLA buffers (see carla_bridge.conversions) and publish them with one header."""
        w, h = self.intrinsics.width, self.intrinsics.height
        header = self.header(stamp_ns)
        for publisher, array, encoding in (
            (self.image, bgra_to_rgb(rgb_raw, w, h), 'rgb8'),
            (self.depth, decode_depth(depth_raw, w, h), '32FC1'),
            (self.pedestrian_mask, pedestrian_mask(semantic_raw, w, h), 'mono8'),
        ):
            msg = fill_image(Image(), array, encoding)
            msg.header = header
            publisher.publish(msg)
        self._info.header = header
        self.camera_info.publish(self._info)
        return header
