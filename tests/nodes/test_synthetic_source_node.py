"""synthetic_source through a real rclpy graph: CARLA-decoded RGB-D + ground truth, speech by sample count."""

from __future__ import annotations

import numpy as np
import pytest
from rclpy.parameter import Parameter
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image

from anon_ros.conversions import audio_to_array, image_to_array
from anon_ros.nodes.common import ParameterError
from anon_ros.nodes.synthetic_source import SyntheticSourceNode
from anon_ros.testing.ros_graph import wait_until
from anon_ros_msgs.msg import AudioStamped


def _ns(stamp: object) -> int:
    return stamp.sec * 1_000_000_000 + stamp.nanosec  # type: ignore[attr-defined]


def _source(graph, **params: object) -> SyntheticSourceNode:  # noqa: ANN001
    defaults = {'width': 160, 'height': 120, 'rate': 10.0, 'n_people': 3}
    overrides = [Parameter(k, value=v) for k, v in {**defaults, **params}.items()]
    return graph.add(SyntheticSourceNode(context=graph.context, parameter_overrides=overrides))


def test_publishes_rgbd_ground_truth_and_speech(ros_graph) -> None:  # noqa: ANN001
    io = ros_graph.node('synthetic_test_io')
    got: dict[str, list] = {k: [] for k in ('image', 'depth', 'info', 'peds', 'heads', 'audio')}
    for key, msg_type, topic in (
        ('image', Image, 'image'), ('depth', Image, 'depth'), ('info', CameraInfo, 'camera_info'),
        ('peds', Image, 'ground_truth/pedestrian_mask'), ('heads', Image, 'ground_truth/head_mask'),
        ('audio', AudioStamped, 'audio'),
    ):
        io.create_subscription(msg_type, topic, got[key].append, 50)
    source = _source(ros_graph)
    # What the source itself published, independent of what the (shared, loaded) test executor manages to take.
    published: list[int] = []
    publish = source.audio_pub.publish
    source.audio_pub.publish = lambda msg: (published.append(msg.sample_index), publish(msg))
    assert wait_until(lambda: len(got['heads']) >= 6 and len(got['audio']) >= 50, 20), {k: len(v) for k, v in got.items()}

    # One header per frame across the camera topics (the head mask is published last).
    stamp = _ns(got['heads'][-1].header.stamp)
    image, depth, info, peds = (
        next(m for m in got[k] if _ns(m.header.stamp) == stamp) for k in ('image', 'depth', 'info', 'peds')
    )
    heads = got['heads'][-1]
    assert (image.encoding, depth.encoding, peds.encoding, heads.encoding) == ('rgb8', '32FC1', 'mono8', 'mono8')
    assert (image.width, image.height) == (160, 120)
    assert {m.header.frame_id for m in (image, depth, info, peds, heads)} == {'camera'}
    # Frames stamped t0 + i / rate.
    frame_ns = [_ns(m.header.stamp) - source.t0_ns for m in got['image']]
    assert all(ns % 100_000_000 == 0 for ns in frame_ns), frame_ns  # multiples of 1 / 10 Hz
    assert frame_ns == sorted(frame_ns)
    # CARLA's 90-degree camera.
    assert info.k[0] == pytest.approx(80.0) and (info.k[2], info.k[5]) == (80.0, 60.0)
    d = image_to_array(depth)
    head = image_to_array(heads) == 255
    ped = image_to_array(peds) == 255
    assert head.any() and not (head & ~ped).any()
    assert (d[ped] < 10).all() and d.max() == pytest.approx(1000.0)
    # People move between the first and the last frame.
    assert not np.array_equal(image_to_array(got['heads'][0]), image_to_array(got['heads'][-1]))

    # Audio: 20 ms chunks, stamped by sample count from the same origin.
    chunks = got['audio']
    rate = chunks[0].sample_rate
    assert rate == 16000 and all(len(audio_to_array(c)) == 320 for c in chunks)
    # Chunks follow each other by sample count; a stall of the (loaded) test process longer than the source's
    # backlog limit makes it skip ahead, which shows as a larger step of sample_index, never as a repeat.
    steps = np.diff(published)
    assert np.all(steps % 320 == 0) and np.all(steps >= 320)
    assert np.mean(steps == 320) >= 0.9, steps
    indices = [c.sample_index for c in chunks]
    assert indices == sorted(set(indices)) and all(i % 320 == 0 for i in indices)
    for c in chunks:
        assert _ns(c.header.stamp) == source.t0_ns + c.sample_index * 1_000_000_000 // rate
    speech = np.concatenate([audio_to_array(c)[:, 0] for c in chunks])
    assert np.abs(speech).max() > 0.01, 'recorded speech, not silence'


def test_clock_and_duration(ros_graph) -> None:  # noqa: ANN001
    io = ros_graph.node('synthetic_clock_io')
    clocks: list[Clock] = []
    io.create_subscription(Clock, '/clock', clocks.append, 10)
    source = _source(ros_graph, publish_clock=True, duration=1.0, audio_file='none')
    assert wait_until(source.finished.is_set, 10)
    assert source.t0_ns == 0
    assert clocks and _ns(clocks[0].clock) < 1_000_000_000
    assert 5 <= source.frames_published <= 11


def test_bad_audio_file_names_the_parameter(ros_graph, tmp_path) -> None:  # noqa: ANN001
    with pytest.raises(ParameterError, match='audio_file'):
        _source(ros_graph, audio_file=str(tmp_path / 'missing.wav'))
