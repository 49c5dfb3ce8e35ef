"""``av_sync``: align anonymized video and audio for a call, republish them, and feed the virtual devices.

Subscribes ``image`` (anonymized sensor_msgs/Image), optionally ``depth`` (paired with the image by stamp), and
``audio`` (anonymized anon_ros_msgs/AudioStamped). Video is the slow path (anonymization takes tens of ms per frame),
so audio is held back by the measured video delay (as RAVAS does): its delay line follows
``arrival - capture stamp`` of the frames. Publishes ``synced/image``, ``synced/depth`` and ``synced/audio`` and, when
enabled, sends frames to a virtual camera (pyvirtualcam) and audio to a virtual microphone (sounddevice into e.g. a
PulseAudio null sink whose monitor a call app selects as its microphone).

Raw data must never reach a call by a wiring mistake: the inputs are checked against the anonymizers' announcements
(anon_ros.nodes.provenance). Until every publisher of an input is a verified anonymizer, the camera gets black frames,
the microphone silence, and nothing is republished, unless ``allow_unverified_inputs`` is set.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np
from rclpy.node import Node
from rclpy.qos_overriding_options import QoSOverridingOptions
from sensor_msgs.msg import Image

from anon_ros.conversions import audio_to_array, fill_audio, image_to_array
from anon_ros.core.audio_time import NS_PER_S
from anon_ros.core.av_align import AlignConfig, AudioChunk, AvAligner
from anon_ros.core.devices import CameraConfig, MicrophoneConfig, VirtualCamera, VirtualMicrophone
from anon_ros.core.errors import AnonRosError, InputError
from anon_ros.core.sync import header_stamp_ns
from anon_ros.nodes.common import AUDIO_IN_QOS, AUDIO_OUT_QOS, IMAGE_OUT_QOS, SENSOR_QOS, declare, run
from anon_ros.nodes.provenance import AnonymizedOutputs, ProvenanceChecker
from anon_ros.ros_sync import make_subscriber, make_synchronizer
from anon_ros_msgs.msg import AudioStamped


def _stamp_msg(ns: int):  # noqa: ANN202 - builtin_interfaces/Time
    from builtin_interfaces.msg import Time

    return Time(sec=ns // NS_PER_S, nanosec=ns % NS_PER_S)


class AvSyncNode(Node):
    """Thin wrapper around :class:`anon_ros.core.av_align.AvAligner` and the virtual devices."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__('av_sync', **kwargs)
        use_depth = declare(self, 'use_depth', False, 'also take a depth topic, paired with the image by stamp')
        slop = declare(self, 'slop', 0.02, 'image/depth pairing tolerance, s', min_value=0.0, max_value=1.0)
        rate = declare(self, 'audio_sample_rate', 16000, 'sample rate of the audio input, Hz', min_value=8000,
                       max_value=96000)
        channels = declare(self, 'audio_channels', 1, 'channels of the audio input', min_value=1, max_value=8)
        max_delay = declare(self, 'max_audio_delay', 0.5, 'longest audio hold-back, s', min_value=0.0, max_value=5.0)
        self.allow_unverified = declare(
            self, 'allow_unverified_inputs', False,
            'feed devices and republish even if an input is not published by an announced anonymizer (unsafe)',
        )
        camera = declare(self, 'virtual_camera', False, 'send frames to a virtual camera (pyvirtualcam)')
        cam_device = declare(self, 'camera_device', '', 'v4l2loopback device, e.g. /dev/video10; empty = any')
        cam_backend = declare(self, 'camera_backend', '', 'pyvirtualcam backend; empty = platform default')
        cam_w = declare(self, 'camera_width', 1280, 'virtual camera width', min_value=16, max_value=7680)
        cam_h = declare(self, 'camera_height', 720, 'virtual camera height', min_value=16, max_value=4320)
        cam_fps = declare(self, 'camera_fps', 30.0, 'virtual camera frame rate', min_value=1.0, max_value=240.0)
        mic = declare(self, 'virtual_microphone', False, 'play audio into a virtual microphone (sounddevice)')
        mic_device = declare(self, 'microphone_device', 'pulse', 'sounddevice output device (pulse = PulseAudio)')
        mic_sink = declare(self, 'pulse_sink', '', 'PulseAudio sink to play into (empty = default sink)')

        self.rate, self.channels = rate, channels
        self.aligner = AvAligner(AlignConfig(sample_rate=rate, channels=channels, max_delay_s=max_delay))
        self.provenance = ProvenanceChecker(self)
        self.inputs = ['image', 'audio'] + (['depth'] if use_depth else [])
        self.verified = False
        self._lock = threading.Lock()
        self.out_samples = 0
        self.frames_to_camera = 0

        overrides = QoSOverridingOptions.with_default_policies()
        self.image_pub = self.create_publisher(Image, 'synced/image', IMAGE_OUT_QOS, qos_overriding_options=overrides)
        self.depth_pub = (self.create_publisher(Image, 'synced/depth', IMAGE_OUT_QOS, qos_overriding_options=overrides)
                          if use_depth else None)
        self.audio_pub = self.create_publisher(
            AudioStamped, 'synced/audio', AUDIO_OUT_QOS, qos_overriding_options=overrides,
        )
        self._outputs = AnonymizedOutputs(self)

        # Devices open at start-up: a missing device is reported now and the rest of the graph keeps running.
        self.camera: VirtualCamera | None = None
        self.microphone: VirtualMicrophone | None = None
        if camera:
            self.camera = self._open(VirtualCamera(CameraConfig(
                width=cam_w, height=cam_h, fps=cam_fps, device=cam_device or None, backend=cam_backend or None,
            )), 'virtual camera')
        if mic:
            self.microphone = self._open(VirtualMicrophone(MicrophoneConfig(
                device=mic_device, pulse_sink=mic_sink or None, sample_rate=rate, channels=channels,
            )), 'virtual microphone')
            if self.microphone is not None:
                self.aligner.set_audio_output_latency(self.microphone.latency_s)

        if use_depth:
            image_sub = make_subscriber(self, Image, 'image', SENSOR_QOS)
            depth_sub = make_subscriber(self, Image, 'depth', SENSOR_QOS)
            make_synchronizer([image_sub, depth_sub], 10, slop, self._on_video)
        else:
            self.create_subscription(Image, 'image', lambda m: self._on_video(m, None), SENSOR_QOS,
                                     qos_overriding_options=overrides)
        self.create_subscription(AudioStamped, 'audio', self._on_audio, AUDIO_IN_QOS, qos_overriding_options=overrides)
        self.create_timer(0.5, self._check_inputs)

    def _open(self, device: VirtualCamera | VirtualMicrophone, what: str) -> VirtualCamera | VirtualMicrophone | None:
        try:
            device.start()
        except AnonRosError as err:
            self.get_logger().error(f'{what} unavailable, continuing without it: {err}')
            return None
        self.get_logger().info(f'{what} open')
        return device

    def _check_inputs(self) -> None:
        """Re-judge the inputs' publishers; a raw publisher appearing later stops the devices at once."""
        topics = [self.resolve_topic_name(t) for t in self.inputs]
        verdicts = self.provenance.check_all(topics)
        ok = all(v.allowed for v in verdicts.values())
        if ok != self.verified:
            if ok:
                self.get_logger().info('all inputs come from anonymizers: feeding devices and republishing')
                for pub in (self.image_pub, self.depth_pub, self.audio_pub):
                    if pub is not None:
                        self._outputs.add(pub)
            else:
                self.get_logger().error('not feeding devices: ' + '; '.join(
                    v.reason for v in verdicts.values() if not v.allowed))
        elif not ok:
            reasons = '; '.join(v.reason for v in verdicts.values() if not v.allowed)
            level = self.get_logger().warn if self.allow_unverified else self.get_logger().error
            level(f'inputs not verified ({reasons})' + (': allowed by allow_unverified_inputs' if
                                                         self.allow_unverified else ': devices get blank/silence'),
                  throttle_duration_sec=10.0)
        self.verified = ok

    @property
    def passing(self) -> bool:
        return self.verified or self.allow_unverified

    def _on_video(self, image: Image, depth: Image | None) -> None:
        try:
            stamp = header_stamp_ns(image)
        except InputError as err:
            self.get_logger().error(f'dropping a frame without a stamp: {err}', throttle_duration_sec=5.0)
            return
        self.aligner.observe_video(stamp, self.get_clock().now().nanoseconds)
        if not self.passing:
            if self.camera is not None:
                self.camera.send_blank()
            return
        self.image_pub.publish(image)
        if depth is not None and self.depth_pub is not None:
            self.depth_pub.publish(depth)
        if self.camera is not None:
            try:
                self.camera.send(image_to_array(image), image.encoding)
                self.frames_to_camera += 1
            except AnonRosError as err:
                self.get_logger().error(f'frame not sent to the camera: {err}', throttle_duration_sec=5.0)
                self.camera.send_blank()

    def _on_audio(self, msg: AudioStamped) -> None:
        try:
            samples = audio_to_array(msg)
            chunk = AudioChunk(np.ascontiguousarray(samples), header_stamp_ns(msg), int(msg.sample_rate))
            with self._lock:
                out = self.aligner.push_audio(chunk, self.get_clock().now().nanoseconds)
        except AnonRosError as err:
            self.get_logger().error(f'audio chunk dropped: {err}', throttle_duration_sec=5.0)
            return
        if out is None:
            return
        if not self.passing:
            out = AudioChunk(np.zeros_like(out.samples), out.stamp_ns, out.sample_rate)
        else:
            reply = fill_audio(AudioStamped(), out.samples, out.sample_rate)
            reply.header.stamp = _stamp_msg(out.stamp_ns)
            reply.header.frame_id = msg.header.frame_id
            reply.sample_index = self.out_samples
            self.audio_pub.publish(reply)
        self.out_samples += out.frames
        if self.microphone is not None:
            self.microphone.write(out.samples)

    def destroy_node(self) -> None:
        for device in (self.camera, self.microphone):
            if device is not None:
                device.close()
        super().destroy_node()


def main(args: Sequence[str] | None = None) -> int:
    return run(AvSyncNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
