"""``synthetic_source``: the embedded default input, CARLA-format RGB-D video of real people plus recorded speech.

Publishes the same topics as the CARLA bridge (``carla_bridge.publishers``): ``image`` (rgb8), ``depth`` (32FC1
metres), ``camera_info``, ``ground_truth/pedestrian_mask`` (mono8), plus ``ground_truth/head_mask`` (mono8, the
pixels every anonymizer must cover), ``audio`` (anon_ros_msgs/AudioStamped, F32LE, 20 ms chunks) and, with
``publish_clock``, ``/clock``.

Frames come from :class:`anon_ros.core.synthetic_stream.SyntheticStream` (real face photos from registry packages,
people walking at several depths) and are encoded into CARLA's BGRA buffers and decoded again by the very
functions the bridge uses, so everything downstream runs exactly as with CARLA.

Time: frame ``i`` is stamped ``t0 + i / rate`` and audio sample ``n`` ``t0 + n / sample_rate`` (integer
nanoseconds, from one origin), never the wall clock at publish time; the wall clock only paces the stream. ``t0``
is the node clock when the stream starts (the first timer callback), or 0 with ``publish_clock`` (a simulated
clock starting at zero, like CARLA's).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import numpy as np
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from rclpy.qos_overriding_options import QoSOverridingOptions
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image

from anon_ros.conversions import fill_audio, fill_image
from anon_ros.core.audio_time import sample_time_ns
from anon_ros.core.errors import AnonRosError, InputError
from anon_ros.core.synthetic_stream import SyntheticStream
from anon_ros.nodes.common import AUDIO_OUT_QOS, IMAGE_OUT_QOS, ParameterError, declare, run
from anon_ros_msgs.msg import AudioStamped
from carla_bridge.conversions import intrinsics_from_fov
from carla_bridge.publishers import CarlaCameraPublishers, stamp_from_ns

FOV_DEG = 90.0
"""The synthetic camera's horizontal field of view (the scene places people for CARLA's default 90 degrees)."""
CHUNK_S = 0.020
"""Audio chunk length: 20 ms."""
MAX_AUDIO_BACKLOG_S = 0.5
"""If publishing falls further behind than this (a stalled process), skip ahead: the gap shows in sample_index."""
PAUSE_S = 0.4
"""Silence between two utterances of the default speech."""


def load_audio(audio_file: str) -> tuple[np.ndarray, int]:
    """Mono float32 speech and its rate: a WAV file, or (``''``) the LibriVox utterances of pocketsphinx-testdata.

    Raises AnonRosError (naming the file, or the package that provides the default speech) when unavailable.
    """
    if audio_file:
        import scipy.io.wavfile

        from anon_ros.core.voice_eval import to_float_mono

        try:
            rate, data = scipy.io.wavfile.read(audio_file)
        except (OSError, ValueError) as err:
            msg = f'parameter audio_file: cannot read WAV file {audio_file!r}: {err}'
            raise ParameterError(msg) from err
        samples = to_float_mono(data)
        if samples.size == 0:
            msg = f'parameter audio_file: {audio_file!r} has no samples'
            raise ParameterError(msg)
        return samples, int(rate)
    from anon_ros.core.voice_eval import EVAL_RATE, load_speech

    utterances = load_speech(['librivox'])
    pause = np.zeros(int(PAUSE_S * EVAL_RATE), np.float32)
    parts = [p for u in utterances for p in (u.audio, pause)]
    return np.concatenate(parts).astype(np.float32), EVAL_RATE


class SyntheticSourceNode(Node):
    """Publishes synthetic CARLA-format RGB-D frames with ground truth, and recorded speech."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__('synthetic_source', **kwargs)
        width = declare(self, 'width', 640, 'image width in px', min_value=64, max_value=4096)
        height = declare(self, 'height', 480, 'image height in px', min_value=64, max_value=4096)
        self.rate = declare(self, 'rate', 15.0, 'frames per second', min_value=0.5, max_value=120.0)
        n_people = declare(self, 'n_people', 5, 'people walking in the scene', min_value=0, max_value=50)
        seed = declare(self, 'seed', 0, 'random seed of the scene (street, people, paths)', min_value=0,
                       max_value=2**31 - 1)
        self.duration = declare(self, 'duration', 0.0, 'seconds to publish, then stop (0: forever)',
                                min_value=0.0, max_value=1e9)
        self.loop = declare(self, 'loop', True, 'repeat the speech when it ends (else audio stops there)')
        audio_file = declare(
            self, 'audio_file', '',
            'WAV file of speech to publish on audio; "" = LibriVox speech from Debian pocketsphinx-testdata; '
            '"none" = no audio',
        )
        self.publish_clock = declare(self, 'publish_clock', False,
                                     'publish /clock (stamps then start at 0, like a simulator)')
        frame_id = declare(self, 'frame_id', 'camera', 'header.frame_id of the camera topics')
        self.audio_frame_id = declare(self, 'audio_frame_id', 'microphone', 'header.frame_id of the audio chunks')

        try:
            self.stream = SyntheticStream((height, width), n_people, seed, self.rate)
        except InputError as err:
            raise ParameterError(str(err)) from err
        self.camera = CarlaCameraPublishers(self, intrinsics_from_fov(width, height, FOV_DEG), frame_id)
        qos_options = QoSOverridingOptions.with_default_policies()
        self.head_mask_pub = self.create_publisher(
            Image, 'ground_truth/head_mask', IMAGE_OUT_QOS, qos_overriding_options=qos_options,
        )
        self.clock_pub = self.create_publisher(Clock, '/clock', 10) if self.publish_clock else None

        self.audio: np.ndarray | None = None
        self.sample_rate = 0
        if audio_file != 'none':
            try:
                self.audio, self.sample_rate = load_audio(audio_file)
            except ParameterError:
                raise
            except AnonRosError as err:  # the default speech's package is missing: run without audio, say why
                self.get_logger().warn(f'no audio: {err}')
        self.chunk = max(1, round(self.sample_rate * CHUNK_S)) if self.audio is not None else 0
        self.audio_pub = self.create_publisher(
            AudioStamped, 'audio', AUDIO_OUT_QOS, qos_overriding_options=qos_options,
        )

        self.finished = threading.Event()
        # The stream starts at the first timer callback, not here: other nodes of the graph may still be loading
        # models, and the audio would start "behind" by that long.
        self._start_lock = threading.Lock()
        self.start: float | None = None
        self.t0_ns = 0
        self.last_frame = -1
        self.sample_index = 0
        self.frames_published = 0
        self.image_timer = self.create_timer(
            1.0 / self.rate, self._on_frame_timer, callback_group=MutuallyExclusiveCallbackGroup(),
        )
        self.audio_timer = (
            self.create_timer(CHUNK_S, self._on_audio_timer, callback_group=MutuallyExclusiveCallbackGroup())
            if self.audio is not None else None
        )
        self.get_logger().info(
            f'{width}x{height} at {self.rate:g} Hz, {self.stream.n_people} people, seed {seed}, '
            + (f'speech {self.audio.size / self.sample_rate:.1f} s at {self.sample_rate} Hz'
               if self.audio is not None else 'no audio')
            + (f', for {self.duration:g} s' if self.duration > 0 else '')
        )

    def _elapsed(self) -> float:
        with self._start_lock:
            if self.start is None:
                self.t0_ns = 0 if self.publish_clock else self.get_clock().now().nanoseconds
                self.start = time.monotonic()
        elapsed = time.monotonic() - self.start
        if self.duration > 0 and elapsed >= self.duration and not self.finished.is_set():
            self._finish()
        return elapsed

    def _finish(self) -> None:
        for timer in (self.image_timer, self.audio_timer):
            if timer is not None:
                timer.cancel()
        self.finished.set()
        self.get_logger().info(f'finished after {self.duration:g} s ({self.frames_published} frames)')

    def _on_frame_timer(self) -> None:
        elapsed = self._elapsed()
        if self.finished.is_set():
            return
        index = int(elapsed * self.rate)
        if index <= self.last_frame:
            return
        self.last_frame = index
        frame = self.stream.frame(index)
        stamp_ns = self.t0_ns + round(index * 1_000_000_000 / self.rate)
        if self.clock_pub is not None:
            self.clock_pub.publish(Clock(clock=stamp_from_ns(stamp_ns)))
        rgb_raw, depth_raw, semantic_raw = frame.carla_frame()
        header = self.camera.publish_carla(stamp_ns, rgb_raw, depth_raw, semantic_raw)
        head = fill_image(Image(), np.where(frame.head_mask, np.uint8(255), np.uint8(0)), 'mono8')
        head.header = header
        self.head_mask_pub.publish(head)
        self.frames_published += 1

    def _on_audio_timer(self) -> None:
        elapsed = self._elapsed()
        if self.finished.is_set() or self.audio is None:
            return
        due = int(elapsed * self.sample_rate)
        if due - self.sample_index > MAX_AUDIO_BACKLOG_S * self.sample_rate:
            skip_to = due - self.chunk
            self.get_logger().warn(
                f'audio fell {(skip_to - self.sample_index) / self.sample_rate:.2f} s behind; skipping ahead',
                throttle_duration_sec=5.0,
            )
            self.sample_index = skip_to - skip_to % self.chunk
        while self.sample_index + self.chunk <= due:
            start = self.sample_index
            if not self.loop and start >= self.audio.size:
                return
            idx = np.arange(start, start + self.chunk) % self.audio.size
            samples = self.audio[idx] if self.loop else np.pad(
                self.audio[start:start + self.chunk], (0, max(0, start + self.chunk - self.audio.size)),
            )
            msg = fill_audio(AudioStamped(), samples, self.sample_rate)
            msg.header.stamp = stamp_from_ns(sample_time_ns(self.t0_ns, start, self.sample_rate))
            msg.header.frame_id = self.audio_frame_id
            msg.sample_index = start
            self.audio_pub.publish(msg)
            self.sample_index += self.chunk

    def destroy_node(self) -> None:
        for timer in (getattr(self, 'image_timer', None), getattr(self, 'audio_timer', None)):
            if timer is not None:
                timer.cancel()
        super().destroy_node()


def main(args: Sequence[str] | None = None) -> int:
    return run(SyntheticSourceNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
