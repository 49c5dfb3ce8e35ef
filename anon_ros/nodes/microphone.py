"""``microphone``: capture a sound card with sounddevice and publish stamped audio chunks.

Publishes ``audio`` (anon_ros_msgs/AudioStamped, F32LE). Each chunk is stamped with the capture time of its first
sample, computed from the stream start and the sample count, so stamps never jitter with callback scheduling.
Raw microphone audio: only an anonymizer should subscribe to it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from builtin_interfaces.msg import Time
from rclpy.node import Node
from rclpy.qos_overriding_options import QoSOverridingOptions

from anon_ros.conversions import fill_audio
from anon_ros.core.audio_time import sample_time_ns
from anon_ros.core.devices import find_device, import_sounddevice, pulse_env
from anon_ros.core.errors import DeviceError
from anon_ros.nodes.common import SENSOR_QOS, declare, run
from anon_ros_msgs.msg import AudioStamped


def _stamp(ns: int) -> Time:
    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def open_input_stream(device: str, pulse_source: str, sample_rate: int, channels: int, chunk: int, callback):  # noqa: ANN001, ANN201
    """Open a sounddevice InputStream, or raise DeviceError that names the device and lists the available inputs."""
    sd = import_sounddevice()
    index = None if device in ('', 'default') else find_device(sd, device, 'input')
    try:
        with pulse_env(PULSE_SOURCE=pulse_source or None):
            stream = sd.InputStream(
                device=index, samplerate=sample_rate, channels=channels, blocksize=chunk, dtype='float32',
                callback=callback,
            )
    except (ValueError, sd.PortAudioError) as err:
        msg = f'cannot open input device {device!r} at {sample_rate} Hz, {channels} channel(s): {err}'
        raise DeviceError(msg) from err
    return stream


class MicrophoneNode(Node):
    """Publishes a sound card's input as AudioStamped chunks, timed by sample count."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__('microphone', **kwargs)
        self.device = declare(self, 'device', 'default', 'sounddevice input: name (or a unique part of it), or "default"')
        pulse_source = declare(self, 'pulse_source', '', 'PulseAudio source to capture through the "pulse" device '
                               '("" = the server default)')
        self.sample_rate = declare(self, 'sample_rate', 16000, 'capture rate in Hz', min_value=8000, max_value=192000)
        self.channels = declare(self, 'channels', 1, 'channels to capture', min_value=1, max_value=32)
        self.chunk = declare(
            self, 'chunk_samples', 320, 'frames per published chunk (320 = 20 ms at 16 kHz)',
            min_value=16, max_value=48000,
        )
        self.frame_id = declare(self, 'frame_id', 'microphone', 'header.frame_id of the published chunks')
        self.publisher = self.create_publisher(
            AudioStamped, 'audio', SENSOR_QOS, qos_overriding_options=QoSOverridingOptions.with_default_policies(),
        )
        self.sample_index = 0
        self.start_ns: int | None = None
        self.stream = open_input_stream(self.device, pulse_source, self.sample_rate, self.channels, self.chunk,
                                        self._on_audio)
        self.stream.start()
        self.get_logger().info(
            f'capturing {self.device!r} at {self.sample_rate} Hz, {self.channels} ch, {self.chunk}-frame chunks'
        )

    def _on_audio(self, data: np.ndarray, frames: int, time_info: object, status: object) -> None:
        # PortAudio's thread. Publishing from here is thread-safe in rclpy and avoids a queue hop.
        if status:
            self.get_logger().warn(f'audio input: {status}', throttle_duration_sec=5.0)
        if self.start_ns is None:
            # The first sample was captured one chunk (plus the input latency) before this callback.
            latency_s = frames / self.sample_rate + float(self.stream.latency)
            self.start_ns = self.get_clock().now().nanoseconds - int(latency_s * 1e9)
        msg = fill_audio(AudioStamped(), data, self.sample_rate)
        msg.header.stamp = _stamp(sample_time_ns(self.start_ns, self.sample_index, self.sample_rate))
        msg.header.frame_id = self.frame_id
        msg.sample_index = self.sample_index
        self.sample_index += frames
        self.publisher.publish(msg)

    def destroy_node(self) -> None:
        stream = getattr(self, 'stream', None)
        if stream is not None:
            stream.stop()
            stream.close()
        super().destroy_node()


def main(args: Sequence[str] | None = None) -> int:
    return run(MicrophoneNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
