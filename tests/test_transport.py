"""DDS transport across processes, with the shipped Fast DDS profile, on loopback only.

These are the foundation's acceptance checks: 1280x720 rgb8 + 32FC1 depth at 30 Hz for 10 s arrive with >= 99 % of
frames, and an audio chunk survives a process boundary bit for bit.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest
from rclpy.qos import QoSProfile, ReliabilityPolicy

from anon_ros.conversions import audio_to_array
from anon_ros.testing.ros_graph import python_process, wait_until
from anon_ros_msgs.msg import AudioStamped


def test_dds_stays_on_loopback() -> None:
    assert os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] == 'LOCALHOST'
    assert os.environ['FASTDDS_DEFAULT_PROFILES_FILE'].endswith('fastdds_local.xml')
    assert 1 <= int(os.environ['ROS_DOMAIN_ID']) <= 101


@pytest.mark.slow
def test_720p_rgbd_at_30hz_between_two_processes(tmp_path) -> None:
    out = tmp_path / 'probe.json'
    probe = ['-m', 'anon_ros.testing.dds_probe']
    with python_process([*probe, 'subscribe', '--expect', '300', '--timeout', '60', '--out', str(out)]) as sub:
        with python_process([*probe, 'publish', '--rate', '30', '--duration', '10', '--timeout', '30']) as pub:
            assert pub.wait(timeout=90) == 0, pub.stdout.read()
        assert sub.wait(timeout=90) == 0, sub.stdout.read()
    result = json.loads(out.read_text())
    for topic in ('probe/rgb', 'probe/depth'):
        assert result[topic]['delivered_fraction'] >= 0.99, result


AUDIO_PUBLISHER = r'''
import sys, time
import numpy as np
import rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy
from anon_ros_msgs.msg import AudioStamped
from anon_ros.conversions import fill_audio

rclpy.init()
node = rclpy.create_node('audio_round_trip_publisher')
pub = node.create_publisher(AudioStamped, 'round_trip/audio', QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
while pub.get_subscription_count() == 0:
    rclpy.spin_once(node, timeout_sec=0.05)
time.sleep(0.5)
rng = np.random.default_rng(int(sys.argv[1]))
for i in range(5):
    msg = fill_audio(AudioStamped(), rng.uniform(-1, 1, (960, 2)).astype(np.float32), 48000)
    msg.sample_index = i * 960
    msg.header.frame_id = 'mic'
    pub.publish(msg)
time.sleep(1.0)
rclpy.shutdown()
'''


def test_audio_chunks_cross_processes_bit_exact(ros_graph) -> None:
    received: list[AudioStamped] = []
    node = ros_graph.node('audio_round_trip_subscriber')
    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    node.create_subscription(AudioStamped, 'round_trip/audio', received.append, qos)
    with python_process(['-c', AUDIO_PUBLISHER, '7']) as pub:
        assert pub.wait(timeout=60) == 0, pub.stdout.read()
    assert wait_until(lambda: len(received) == 5, timeout=5), len(received)
    rng = np.random.default_rng(7)
    for i, msg in enumerate(received):
        expected = rng.uniform(-1, 1, (960, 2)).astype(np.float32)
        assert (msg.sample_index, msg.sample_rate, msg.channels) == (i * 960, 48000, 2)
        np.testing.assert_array_equal(audio_to_array(msg), expected)


def test_child_processes_get_a_working_ros_environment() -> None:
    with python_process(['-c', 'import rclpy, anon_ros_msgs.msg; print("ok")']) as proc:
        assert proc.wait(timeout=60) == 0
        assert proc.stdout.read().strip().endswith('ok')
    assert sys.executable
