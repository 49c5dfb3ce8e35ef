"""Streaming voice anonymization (ROS-free): McAdams pole warping, an ONNX converter backend, input guards,
a stream clock. See :mod:`anon_ros.core.voice.base` for the stream contract every backend keeps."""

from anon_ros.core.voice.base import FULL_SCALE, StreamingVoiceAnonymizer, VoiceBackend, VoiceError
from anon_ros.core.voice.clock import AudioStreamClock, ClockAction, ClockConfig, ClockDecision
from anon_ros.core.voice.limiter import LimiterConfig, PeakLimiter
from anon_ros.core.voice.mcadams import McAdamsAnonymizer, McAdamsConfig, Strength, VoiceParams, anonymize_offline
from anon_ros.core.voice.onnx_backend import OnnxStreamSpec, OnnxVoiceConverter
from anon_ros.core.voice.resample import StreamingResampler
from anon_ros.core.voice.stream import (
    ChannelPolicy,
    ChunkResult,
    FaultKind,
    FormatRejectedError,
    GuardedVoiceStream,
    RatePolicy,
    VoiceFault,
    make_backend,
    pcm_to_float,
)

__all__ = [
    'FULL_SCALE',
    'AudioStreamClock',
    'ChannelPolicy',
    'ChunkResult',
    'ClockAction',
    'ClockConfig',
    'ClockDecision',
    'FaultKind',
    'FormatRejectedError',
    'GuardedVoiceStream',
    'LimiterConfig',
    'McAdamsAnonymizer',
    'McAdamsConfig',
    'OnnxStreamSpec',
    'OnnxVoiceConverter',
    'PeakLimiter',
    'RatePolicy',
    'StreamingResampler',
    'StreamingVoiceAnonymizer',
    'Strength',
    'VoiceBackend',
    'VoiceError',
    'VoiceFault',
    'VoiceParams',
    'anonymize_offline',
    'make_backend',
    'pcm_to_float',
]
