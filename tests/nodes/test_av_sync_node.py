"""av_sync through a real rclpy graph, a real PulseAudio server and pyvirtualcam with a capturing backend.

These machines have no v4l2loopback device, so the virtual camera uses anon_ros.testing.virtualcam's capturing
backend (registered with pyvirtualcam.register_backend); everything else is real: DDS, PulseAudio (null sink +
remapped source, recorded back through sounddevice), recorded speech.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from anon_ros.conversions import audio_to_array, fill_audio, fill_image
from anon_ros.nodes.av_sync import AvSyncNode
from anon_ros.nodes.provenance import AnonymizedOutputs
from anon_ros.testing import pulseaudio as pa
from anon_ros.testing.ros_graph import wait_until
from anon_ros.testing.virtualcam import BACKEND_NAME, capturing_backend
from anon_ros_msgs.msg import AudioStamped
from tests.core.speech_data import speech

RATE = 16000
CHUNK = RATE // 50
RELIABLE = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)


@pytest.fixture(scope='module')
def pulse() -> Iterator[pa.PulseAudioServer]:
    with pa.pulseaudio_server(sink='call_sink', source='call_mic', sample_rate=RATE, channels=1) as server:
        yield server


def _stamp(ns: int) -> Time:
    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


class Upstream:
    """Stands in for the anonymizers: publishes ``image`` and ``audio`` and, if ``announce``, announces them."""

    def __init__(self, graph, announce: bool) -> None:  # noqa: ANN001
        self.node = graph.node('stand_in_anonymizer')
        self.image_pub = self.node.create_publisher(Image, 'image', RELIABLE)
        self.audio_pub = self.node.create_publisher(AudioStamped, 'audio', RELIABLE)
        if announce:
            outputs = AnonymizedOutputs(self.node)
            outputs.add(self.image_pub)
            outputs.add(self.audio_pub)

    def stream(self, audio: np.ndarray, frame: np.ndarray) -> None:
        """Publish ``audio`` in 20 ms chunks at real-time pace, with a frame every ~33 ms."""
        start = time.time_ns()
        for i in range(0, len(audio) - CHUNK + 1, CHUNK):
            stamp = start + i * 1_000_000_000 // RATE
            msg = fill_audio(AudioStamped(), audio[i:i + CHUNK], RATE)
            msg.header.stamp = _stamp(stamp)
            msg.sample_index = i
            self.audio_pub.publish(msg)
            if (i // CHUNK) % 2 == 0:
                img = fill_image(Image(), frame, 'rgb8')
                img.header.stamp = _stamp(stamp)
                self.image_pub.publish(img)
            time.sleep(max(0.0, (start + (i + CHUNK) * 1_000_000_000 // RATE - time.time_ns()) / 1e9))


def _av_sync(graph, pulse: pa.PulseAudioServer) -> AvSyncNode:  # noqa: ANN001
    params = [
        Parameter('virtual_camera', value=True), Parameter('camera_backend', value=BACKEND_NAME),
        Parameter('camera_width', value=64), Parameter('camera_height', value=48),
        Parameter('virtual_microphone', value=True), Parameter('pulse_sink', value=pulse.sink),
        Parameter('audio_sample_rate', value=RATE),
    ]
    return graph.add(AvSyncNode(context=graph.context, parameter_overrides=params))


def test_anonymized_audio_reaches_the_call_microphone_and_frames_the_camera(ros_graph, pulse) -> None:  # noqa: ANN001
    voice = speech(1, seconds=2.0)
    frame = np.full((48, 64, 3), 90, np.uint8)
    synced: list[AudioStamped] = []
    with capturing_backend() as camera, pa.Recorder(pulse) as recorder:
        upstream = Upstream(ros_graph, announce=True)
        node = _av_sync(ros_graph, pulse)
        upstream.node.create_subscription(AudioStamped, 'synced/audio', synced.append, RELIABLE)
        assert wait_until(lambda: node.verified, 10), 'the announced anonymizer was not verified'
        recorder.wait_ready()
        upstream.stream(voice, frame)
        time.sleep(1.0)
    recording = recorder.signal()
    _, score = pa.locate(voice, recording)
    assert score > 0.8, f'the published speech was not found in the call microphone (correlation {score:.2f})'
    assert len(camera.frames) >= 40
    assert np.all(camera.frames[-1] == 90)
    # The republished audio is the same speech, delayed but not altered.
    out = np.concatenate([audio_to_array(m)[:, 0] for m in synced])
    assert pa.locate(voice, out[:, None])[1] > 0.99


def test_unannounced_raw_input_never_reaches_the_call(ros_graph, pulse) -> None:  # noqa: ANN001
    voice = speech(1, seconds=1.5)
    frame = np.full((48, 64, 3), 200, np.uint8)
    synced: list[Image] = []
    with capturing_backend() as camera, pa.Recorder(pulse) as recorder:
        upstream = Upstream(ros_graph, announce=False)  # e.g. the raw camera remapped by mistake
        node = _av_sync(ros_graph, pulse)
        upstream.node.create_subscription(Image, 'synced/image', synced.append, RELIABLE)
        recorder.wait_ready()
        upstream.stream(voice, frame)
        time.sleep(1.0)
    assert not node.verified
    assert synced == []
    assert camera.frames, 'the camera should get black frames'
    assert all(not f.any() for f in camera.frames)
    assert pa.locate(voice, recorder.signal())[1] < 0.3
    assert np.max(np.abs(recorder.signal())) < 1e-3
