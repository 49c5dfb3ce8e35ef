"""face_anonymizer through a real rclpy graph: real photos in, anonymized frames out, fail-closed on bad input."""

from __future__ import annotations

import numpy as np
import pytest
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from anon_ros.conversions import fill_image, image_to_array
from anon_ros.core.heads import HeadSource
from anon_ros.core.scene import compose_scene
from anon_ros.nodes.face_anonymizer import FaceAnonymizerNode
from anon_ros.testing.ros_graph import wait_until
from anon_ros_msgs.msg import HeadDetection, HeadDetectionArray

RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


@pytest.fixture(scope='module')
def scene():  # noqa: ANN201
    return compose_scene(3, (480, 640), np.random.default_rng(5), face_widths=[40.0, 70.0, 110.0])


class Harness:
    """The node under test plus a publisher of inputs and a collector of outputs in one graph."""

    def __init__(self, graph, **params: object) -> None:  # noqa: ANN001
        overrides = [Parameter(k, value=v) for k, v in params.items()]
        self.node = graph.add(FaceAnonymizerNode(context=graph.context, parameter_overrides=overrides))
        self.io = graph.node('face_test_io')
        self.image_pub = self.io.create_publisher(Image, 'image', RELIABLE)
        self.depth_pub = self.io.create_publisher(Image, 'depth', RELIABLE)
        self.outputs: list[Image] = []
        self.masks: list[Image] = []
        self.io.create_subscription(Image, 'image_anonymized', self.outputs.append, RELIABLE)
        self.io.create_subscription(Image, 'mask', self.masks.append, RELIABLE)
        self.detections: list[HeadDetectionArray] = []
        self.io.create_subscription(HeadDetectionArray, 'detections', self.detections.append, RELIABLE)
        assert wait_until(lambda: self.image_pub.get_subscription_count() > 0, 10)

    def send(self, rgb: np.ndarray | None, stamp_s: int, encoding: str = 'rgb8', depth: np.ndarray | None = None,
             raw: Image | None = None) -> None:
        msg = raw if raw is not None else fill_image(Image(), rgb, encoding)
        msg.header.stamp.sec = stamp_s
        msg.header.frame_id = 'camera'
        if depth is not None:
            dmsg = fill_image(Image(), depth, '32FC1')
            dmsg.header = msg.header
            self.depth_pub.publish(dmsg)
        self.image_pub.publish(msg)

    def wait_outputs(self, n: int, timeout: float = 30) -> list[Image]:
        assert wait_until(lambda: len(self.outputs) >= n, timeout), f'{len(self.outputs)} of {n} outputs'
        return self.outputs


def test_rgbd_frame_is_anonymized_with_header_kept(ros_graph, scene) -> None:  # noqa: ANN001
    h = Harness(ros_graph, publish_mask=True, detect_every=1)
    h.send(scene.rgb, 11, depth=scene.depth_m)
    out = h.wait_outputs(1)[0]
    assert (out.header.stamp.sec, out.header.frame_id, out.encoding) == (11, 'camera', 'rgb8')
    result = image_to_array(out)
    assert wait_until(lambda: len(h.masks) >= 1, 10)
    mask = image_to_array(h.masks[0]) > 0
    # Every ground-truth head pixel is in the mask and changed; nothing outside the mask changed.
    assert mask[scene.head_mask].all()
    changed = np.any(result != scene.rgb, axis=2)
    assert changed[scene.head_mask].mean() > 0.9
    assert not changed[~mask].any()


def test_detections_carry_the_masked_head_boxes_with_the_image_header(ros_graph, scene) -> None:  # noqa: ANN001
    h = Harness(ros_graph, publish_mask=True, publish_detections=True, detect_every=1)
    h.send(scene.rgb, 12, depth=scene.depth_m)
    h.wait_outputs(1)
    assert wait_until(lambda: len(h.detections) >= 1 and len(h.masks) >= 1, 10)
    det = h.detections[0]
    assert (det.header.stamp.sec, det.header.frame_id, det.detected) == (12, 'camera', True)
    assert len(det.heads) >= len(scene.head_boxes)
    assert {d.source for d in det.heads} <= {HeadDetection.SOURCE_KEYPOINTS, HeadDetection.SOURCE_PERSON_BOX,
                                             HeadDetection.SOURCE_FACE}
    # The boxes are the mask's: every masked pixel lies in one of them, and every true head in the union.
    boxes = np.zeros(scene.rgb.shape[:2], bool)
    for d in det.heads:
        assert 0 < d.score <= 1 and d.x_min < d.x_max and d.y_min < d.y_max
        boxes[int(d.y_min):int(np.ceil(d.y_max)), int(d.x_min):int(np.ceil(d.x_max))] = True
    mask = image_to_array(h.masks[0]) > 0
    assert not (mask & ~boxes).any()
    assert boxes[scene.head_mask].all()


def test_head_detection_sources_match_the_core() -> None:
    sources = [HeadDetection.SOURCE_KEYPOINTS, HeadDetection.SOURCE_PERSON_BOX, HeadDetection.SOURCE_FACE,
               HeadDetection.SOURCE_TRACK]
    assert sources == [int(s) for s in HeadSource]


def test_bgr8_without_depth_keeps_encoding(ros_graph, scene) -> None:  # noqa: ANN001
    h = Harness(ros_graph, use_depth=False, detect_every=1)
    h.send(np.ascontiguousarray(scene.rgb[:, :, ::-1]), 12, encoding='bgr8')
    out = h.wait_outputs(1)[0]
    assert out.encoding == 'bgr8'
    changed = np.any(image_to_array(out)[:, :, ::-1] != scene.rgb, axis=2)
    assert changed[scene.head_mask].mean() > 0.9


def test_malformed_frames_are_obscured_and_the_node_keeps_running(ros_graph, scene) -> None:  # noqa: ANN001
    h = Harness(ros_graph, use_depth=False, detect_every=1)
    truncated = fill_image(Image(), scene.rgb, 'rgb8')
    truncated.data = truncated.data[: len(truncated.data) // 2]
    unknown = Image(height=480, width=640, encoding='yuv422', step=1280)
    unknown.data = scene.rgb.tobytes()[: 480 * 1280]
    # One at a time: frames sent faster than they are processed are dropped (latest wins), by design.
    for i, (rgb, raw) in enumerate([(None, truncated), (None, unknown), (scene.rgb, None)]):
        h.send(rgb, i + 1, raw=raw)
        outs = h.wait_outputs(i + 1)
    by_stamp = {o.header.stamp.sec: image_to_array(o) for o in outs}
    for stamp in (1, 2):
        # Nothing of the input survives: a flat grey frame of the announced size.
        assert by_stamp[stamp].shape == (480, 640, 3)
        assert np.all(by_stamp[stamp] == 128)
    assert np.any(by_stamp[3] != scene.rgb, axis=2)[scene.head_mask].mean() > 0.9
    assert h.node.stats.failed == 2


def test_nan_and_far_plane_depth_do_not_shrink_the_mask(ros_graph, scene) -> None:  # noqa: ANN001
    h = Harness(ros_graph, publish_mask=True, detect_every=1)
    depth = scene.depth_m.copy()
    depth[::2] = np.nan
    depth[1::4] = 1000.0
    h.send(scene.rgb, 21, depth=depth)
    out = h.wait_outputs(1)[0]
    changed = np.any(image_to_array(out) != scene.rgb, axis=2)
    assert changed[scene.head_mask].mean() > 0.9
