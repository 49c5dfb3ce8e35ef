"""microphone through a real PulseAudio server: speech played into a null sink is captured from its monitor source
and published as AudioStamped chunks timed by sample count."""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np
import pytest
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy

from anon_ros.conversions import audio_to_array
from anon_ros.core.errors import DeviceError
from anon_ros.nodes.microphone import MicrophoneNode
from anon_ros.testing import pulseaudio as pa
from anon_ros.testing.ros_graph import wait_until
from anon_ros_msgs.msg import AudioStamped
from tests.core.speech_data import speech

RATE = 16000
# Best effort, like the publisher (a reliable reader would not match it), with room for every chunk.
BEST_EFFORT = QoSProfile(depth=500, reliability=ReliabilityPolicy.BEST_EFFORT)


@pytest.fixture(scope='module')
def pulse() -> Iterator[pa.PulseAudioServer]:
    with pa.pulseaudio_server(sink='room', source='room_mic', sample_rate=RATE, channels=1) as server:
        yield server


def _ns(stamp) -> int:  # noqa: ANN001
    return stamp.sec * 1_000_000_000 + stamp.nanosec


def test_captured_speech_is_published_with_sample_count_stamps(ros_graph, pulse) -> None:  # noqa: ANN001
    voice = speech(1, seconds=2.0)
    params = [Parameter('device', value='pulse'), Parameter('pulse_source', value=pulse.source),
              Parameter('sample_rate', value=RATE), Parameter('chunk_samples', value=320)]
    chunks: list[AudioStamped] = []
    io = ros_graph.node('mic_test_io')
    io.create_subscription(AudioStamped, 'audio', chunks.append, BEST_EFFORT)
    node = ros_graph.add(MicrophoneNode(context=ros_graph.context, parameter_overrides=params))
    assert wait_until(lambda: len(chunks) > 0, 10), 'no audio from the PulseAudio source'
    pa.play(pulse, voice)
    time.sleep(0.5)
    node.stream.stop()
    captured = np.concatenate([audio_to_array(c)[:, 0] for c in chunks])
    _, score = pa.locate(voice, captured[:, None])
    assert score > 0.9, f'played speech not found in the capture (correlation {score:.2f})'
    assert all(c.sample_rate == RATE and c.channels == 1 and c.sample_format == 'F32LE' for c in chunks)
    # Time by sample count: indices are contiguous and stamps advance by exactly 320 samples (20 ms) per chunk.
    assert [c.sample_index for c in chunks] == [320 * i for i in range(len(chunks))]
    steps = np.diff([_ns(c.header.stamp) for c in chunks])
    assert np.all(np.abs(steps - 20_000_000) <= 1)


def test_missing_device_names_it_and_lists_the_inputs(ros_graph) -> None:  # noqa: ANN001
    with pytest.raises(DeviceError, match=r"'no_such_microphone' not found; available input devices: "):
        MicrophoneNode(context=ros_graph.context, parameter_overrides=[Parameter('device', value='no_such_microphone')])
