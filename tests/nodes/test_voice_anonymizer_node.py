"""voice_anonymizer through a real rclpy graph, with recorded speech: timing, format handling, fail-closed."""

from __future__ import annotations

import time

import numpy as np
from builtin_interfaces.msg import Time
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy

from anon_ros.conversions import audio_to_array, fill_audio
from anon_ros.nodes.voice_anonymizer import VoiceAnonymizerNode
from anon_ros.testing.ros_graph import wait_until
from anon_ros_msgs.msg import AudioStamped
from tests.core.speech_data import speech

RATE = 16000
CHUNK = 320
RELIABLE = QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE)
T0 = 1_700_000_000 * 10**9


class Harness:
    def __init__(self, graph, **params: object) -> None:  # noqa: ANN001
        overrides = [Parameter(k, value=v) for k, v in params.items()]
        self.node = graph.add(VoiceAnonymizerNode(context=graph.context, parameter_overrides=overrides))
        self.io = graph.node('voice_test_io')
        self.pub = self.io.create_publisher(AudioStamped, 'audio', RELIABLE)
        self.out: list[AudioStamped] = []
        self.io.create_subscription(AudioStamped, 'audio_anonymized', self.out.append, RELIABLE)
        assert wait_until(lambda: self.pub.get_subscription_count() > 0, 10)

    def send(self, samples: np.ndarray, index: int, rate: int = RATE, fmt: str = 'F32LE') -> None:
        msg = fill_audio(AudioStamped(), samples, rate, fmt)
        ns = T0 + index * 10**9 // rate
        msg.header.stamp = Time(sec=ns // 10**9, nanosec=ns % 10**9)
        msg.sample_index = index
        self.pub.publish(msg)

    def stream(self, audio: np.ndarray, rate: int = RATE, chunk: int = CHUNK, fmt: str = 'F32LE') -> int:
        """Publish at twice real time, as a live source would (a burst beyond the input queue would be lost)."""
        n = 0
        for i in range(0, len(audio) - chunk + 1, chunk):
            self.send(audio[i:i + chunk], i, rate, fmt)
            time.sleep(chunk / rate / 2)
            n += 1
        return n

    def output(self, chunks: int) -> np.ndarray:
        assert wait_until(lambda: len(self.out) >= chunks, 20), f'{len(self.out)} of {chunks} chunks'
        return np.concatenate([audio_to_array(m)[:, 0] for m in self.out])


def test_speech_is_anonymized_with_capture_stamps(ros_graph) -> None:  # noqa: ANN001
    voice = speech(1, seconds=2.0)
    h = Harness(ros_graph)
    n = h.stream(voice)
    out = h.output(n)
    latency = h.node.stream.backend.latency_samples
    assert out.shape == (n * CHUNK,)
    assert np.max(np.abs(out)) <= 1.0
    aligned = out[latency:]
    ref = voice[:len(aligned)]
    # Same timing and level of speech, but not the same waveform.
    assert np.corrcoef(aligned, ref)[0, 1] < 0.9
    assert 0.3 < np.std(aligned) / np.std(ref) < 3.0
    first = h.out[0].header.stamp
    assert (first.sec * 10**9 + first.nanosec) == T0 - latency * 10**9 // RATE
    assert [m.sample_index for m in h.out[:3]] == [0, CHUNK, 2 * CHUNK]


def test_nan_chunk_becomes_silence_and_the_stream_continues(ros_graph) -> None:  # noqa: ANN001
    voice = speech(1, seconds=1.0)
    h = Harness(ros_graph)
    bad = voice[:CHUNK].copy()
    bad[10] = np.nan
    h.send(voice[:CHUNK], 0)
    h.send(bad, CHUNK)
    h.send(voice[2 * CHUNK:3 * CHUNK], 2 * CHUNK)
    out = h.output(3)
    assert np.all(out[CHUNK:2 * CHUNK] == 0)
    assert h.node.faults == 1
    assert np.all(np.isfinite(out))


def test_stereo_48k_s16_is_downmixed_and_resampled(ros_graph) -> None:  # noqa: ANN001
    voice = speech(1, seconds=1.0)
    upsampled = np.repeat(voice, 3)  # 48 kHz (crude, enough for a format test)
    stereo = np.stack([upsampled, upsampled], axis=1)
    h = Harness(ros_graph)
    n = h.stream(stereo, rate=48000, chunk=960, fmt='S16LE')
    out = h.output(n)
    # The streaming resampler holds back a few samples (its filter delay): at most 2 ms.
    assert 0 <= n * 320 - len(out) <= RATE // 500
    assert all(m.sample_rate == RATE and m.channels == 1 for m in h.out)


def test_unknown_format_is_dropped_and_nothing_raw_goes_out(ros_graph) -> None:  # noqa: ANN001
    h = Harness(ros_graph)
    msg = AudioStamped(sample_rate=RATE, channels=1, sample_format='U8')
    msg.data = bytes(range(256)) * 2
    h.pub.publish(msg)
    h.send(speech(1, seconds=0.1)[:CHUNK], 0)
    h.output(1)
    assert h.node.dropped == 1
    assert len(h.out) == 1
