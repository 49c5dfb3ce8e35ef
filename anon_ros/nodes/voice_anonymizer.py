"""``voice_anonymizer``: stamped microphone audio in, anonymized audio out, chunk by chunk.

Subscribes ``audio`` (anon_ros_msgs/AudioStamped), publishes ``audio_anonymized`` (mono F32LE at the backend's rate).
Backends (``backend``): ``mcadams`` (McAdams LPC pole warping with a per-run random strength, no weights) or
``onnx`` (a streaming neural converter exported to ONNX, with state tensors carried between chunks).

Stamps keep giving the capture time of the samples: the anonymizer delays the stream by ``latency_samples``, so an
output chunk is stamped ``input stamp - latency``. Gaps in the input (by ``sample_index``, else by stamps) are
filled with silence or reset the anonymizer; duplicates and out-of-order chunks are dropped (AudioStreamClock).

Fails closed: NaN/inf input, a backend error or a chunk that cannot be decoded gives silence of the chunk's length,
never raw audio, and the node keeps running.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from rclpy.node import Node
from rclpy.qos_overriding_options import QoSOverridingOptions

from anon_ros.conversions import fill_audio
from anon_ros.core.audio_time import NS_PER_S
from anon_ros.core.errors import InputError
from anon_ros.core.sync import header_stamp_ns
from anon_ros.core.voice import (
    AudioStreamClock,
    ChannelPolicy,
    ClockAction,
    GuardedVoiceStream,
    McAdamsConfig,
    OnnxStreamSpec,
    RatePolicy,
    Strength,
    VoiceBackend,
    make_backend,
    pcm_to_float,
)
from anon_ros.nodes.common import AUDIO_IN_QOS, AUDIO_OUT_QOS, declare, run
from anon_ros.nodes.provenance import AnonymizedOutputs
from anon_ros_msgs.msg import AudioStamped

SAMPLE_DTYPES = {'F32LE': np.dtype('<f4'), 'S16LE': np.dtype('<i2')}


def _stamp_msg(ns: int):  # noqa: ANN202 - builtin_interfaces/Time
    from builtin_interfaces.msg import Time

    return Time(sec=ns // NS_PER_S, nanosec=ns % NS_PER_S)


class VoiceAnonymizerNode(Node):
    """Thin wrapper around :class:`anon_ros.core.voice.GuardedVoiceStream`."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__('voice_anonymizer', **kwargs)
        core = McAdamsConfig()
        backend = VoiceBackend.parse(declare(self, 'backend', VoiceBackend.MCADAMS.value, 'mcadams or onnx',
                                             choices=[b.value for b in VoiceBackend]))
        rate = declare(self, 'sample_rate', core.sample_rate, 'rate the anonymizer runs at (input is resampled)',
                       min_value=8000, max_value=96000)
        strength = Strength.parse(declare(
            self, 'strength', Strength.STRONG.value,
            'McAdams + formant-warp ranges (a fresh random strength is drawn per run from them): strong (privacy '
            'first), balanced (more intelligible), mcadams (VoicePrivacy-style alpha 0.5-0.9), resonant (random '
            'resonance EQ: intelligible, but undone in part by spectrum-flattening attackers)',
            choices=[s.value for s in Strength]))
        onnx_model = declare(self, 'onnx_model', '', 'streaming ONNX converter (backend onnx)')
        onnx_chunk = declare(self, 'onnx_chunk_samples', 320, 'samples per ONNX call', min_value=1, max_value=96000)
        onnx_states = declare(self, 'onnx_state_pairs', [''],
                              'state tensors as "input:output" pairs, carried from call to call')
        channels = declare(self, 'channel_policy', ChannelPolicy.DOWNMIX.value, 'multi-channel input: downmix or '
                           'reject', choices=[c.value for c in ChannelPolicy])
        rates = declare(self, 'rate_policy', RatePolicy.RESAMPLE.value, 'input at another rate: resample or reject',
                        choices=[r.value for r in RatePolicy])

        if backend is VoiceBackend.MCADAMS:
            anonymizer = make_backend(backend, mcadams=McAdamsConfig.preset(strength, rate))
        elif backend is VoiceBackend.ONNX:
            pairs = tuple(tuple(p.split(':', 1)) for p in onnx_states if p)
            if any(len(p) != 2 for p in pairs):
                msg = f'parameter onnx_state_pairs: expected "input:output" entries, got {onnx_states}'
                raise InputError(msg)
            spec = OnnxStreamSpec(model_path=Path(onnx_model), sample_rate=rate, chunk_samples=onnx_chunk,
                                  state_pairs=pairs)  # type: ignore[arg-type]
            anonymizer = make_backend(backend, onnx=spec)
        else:
            msg = f'unknown voice backend {backend!r}'
            raise AssertionError(msg)
        self.stream = GuardedVoiceStream(anonymizer, ChannelPolicy(channels), RatePolicy(rates))
        self.latency_ns = anonymizer.latency_samples * NS_PER_S // anonymizer.sample_rate
        self.clock = AudioStreamClock()
        self.out_index = 0
        self.faults = 0
        self.dropped = 0

        self.publisher = self.create_publisher(AudioStamped, 'audio_anonymized', AUDIO_OUT_QOS,
                                               qos_overriding_options=QoSOverridingOptions.with_default_policies())
        AnonymizedOutputs(self).add(self.publisher)
        self.create_subscription(AudioStamped, 'audio', self._on_audio, AUDIO_IN_QOS,
                                 qos_overriding_options=QoSOverridingOptions.with_default_policies())
        self.get_logger().info(
            f'ready: backend {backend.value} at {anonymizer.sample_rate} Hz, algorithmic latency '
            f'{self.latency_ns / 1e6:.1f} ms'
        )

    def _on_audio(self, msg: AudioStamped) -> None:
        try:
            stamp = header_stamp_ns(msg)
            samples = self._decode(msg)
        except InputError as err:
            self.dropped += 1
            self.get_logger().error(f'audio chunk dropped: {err}', throttle_duration_sec=5.0)
            return
        frames = samples.shape[0]
        if frames == 0:
            return
        decision = self.clock.observe(stamp, frames, int(msg.sample_rate), int(msg.sample_index))
        if decision.action is ClockAction.DROP:
            self.dropped += 1
            self.get_logger().warn(f'audio chunk dropped: {decision.reason}', throttle_duration_sec=5.0)
            return
        if decision.action is ClockAction.RESET:
            self.get_logger().warn(f'voice stream reset: {decision.reason}', throttle_duration_sec=5.0)
            self.stream.reset()
        elif decision.action is ClockAction.GAP_FILL:
            gap = self.stream.process(np.zeros(decision.silence_samples, np.float32), int(msg.sample_rate))
            self._publish(gap.audio, stamp - decision.silence_samples * NS_PER_S // msg.sample_rate, msg)
        try:
            result = self.stream.process(samples, int(msg.sample_rate), int(msg.channels))
        except InputError as err:  # rejected format: nothing of this chunk goes out
            self.dropped += 1
            self.get_logger().error(f'audio chunk rejected: {err}', throttle_duration_sec=5.0)
            return
        if result.fault is not None:
            self.faults += 1
            self.get_logger().error(f'voice anonymizer fault, chunk replaced by silence: {result.fault.detail}',
                                    throttle_duration_sec=5.0)
        if result.clipped_samples:
            self.get_logger().warn(f'{result.clipped_samples} clipped input samples', throttle_duration_sec=10.0)
        self._publish(result.audio, stamp, msg)

    @staticmethod
    def _decode(msg: AudioStamped) -> np.ndarray:
        if msg.sample_format not in SAMPLE_DTYPES:
            text = f'unsupported sample_format {msg.sample_format!r}; expected one of {sorted(SAMPLE_DTYPES)}'
            raise InputError(text)
        if msg.channels < 1 or msg.sample_rate < 1:
            text = f'audio chunk with {msg.channels} channels at {msg.sample_rate} Hz'
            raise InputError(text)
        dtype = SAMPLE_DTYPES[msg.sample_format]
        data = memoryview(msg.data).cast('B')
        if len(data) % (dtype.itemsize * msg.channels):
            text = f'{len(data)} bytes is not a whole number of {msg.channels}-channel {msg.sample_format} frames'
            raise InputError(text)
        raw = np.frombuffer(data, dtype=dtype).reshape(-1, msg.channels)
        return pcm_to_float(raw, msg.channels).reshape(-1, msg.channels)

    def _publish(self, audio: np.ndarray, input_stamp_ns: int, src: AudioStamped) -> None:
        if audio.size == 0:
            return
        out = fill_audio(AudioStamped(), audio, self.stream.sample_rate)
        # The output lags the input by the algorithmic latency: stamp it with the capture time of its samples.
        out.header.stamp = _stamp_msg(max(0, input_stamp_ns - self.latency_ns))
        out.header.frame_id = src.header.frame_id
        out.sample_index = self.out_index
        self.out_index += audio.size
        self.publisher.publish(out)


def main(args: Sequence[str] | None = None) -> int:
    return run(VoiceAnonymizerNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
