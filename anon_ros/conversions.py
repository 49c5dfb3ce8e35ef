"""Conversions between ROS messages and NumPy arrays (cv_bridge is not available everywhere anon_ros runs).

Imports message *types* only, never rclpy, so it can be used by offline tools that read bags.
Every check raises InputError with what was expected and what came, so a node can report it and fail closed.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from anon_ros.core.errors import InputError


@dataclass(frozen=True)
class Encoding:
    """How one ``sensor_msgs/Image`` encoding maps to an array."""

    dtype: np.dtype
    channels: int


ENCODINGS: dict[str, Encoding] = {
    'rgb8': Encoding(np.dtype(np.uint8), 3),
    'bgr8': Encoding(np.dtype(np.uint8), 3),
    'rgba8': Encoding(np.dtype(np.uint8), 4),
    'bgra8': Encoding(np.dtype(np.uint8), 4),
    'mono8': Encoding(np.dtype(np.uint8), 1),
    '8UC1': Encoding(np.dtype(np.uint8), 1),
    '8UC3': Encoding(np.dtype(np.uint8), 3),
    'mono16': Encoding(np.dtype(np.uint16), 1),
    '16UC1': Encoding(np.dtype(np.uint16), 1),
    '32FC1': Encoding(np.dtype(np.float32), 1),
}


def image_to_array(msg: object) -> NDArray[np.generic]:
    """View a ``sensor_msgs/Image`` as an (H, W) or (H, W, C) array without copying when possible.

    Honours ``step`` (row padding) and ``is_bigendian``. Raises InputError for unknown encodings, empty images and
    a data length that does not match height * step.
    """
    encoding: str = msg.encoding  # type: ignore[attr-defined]
    height: int = msg.height  # type: ignore[attr-defined]
    width: int = msg.width  # type: ignore[attr-defined]
    step: int = msg.step  # type: ignore[attr-defined]
    if encoding not in ENCODINGS:
        msg_ = f'unsupported image encoding {encoding!r}; expected one of {sorted(ENCODINGS)}'
        raise InputError(msg_)
    spec = ENCODINGS[encoding]
    if height <= 0 or width <= 0:
        msg_ = f'empty image: {width}x{height} ({encoding})'
        raise InputError(msg_)
    row_bytes = width * spec.channels * spec.dtype.itemsize
    if step < row_bytes:
        msg_ = f'image step {step} is smaller than width * bytes per pixel = {row_bytes} ({width}x{height} {encoding})'
        raise InputError(msg_)
    data = memoryview(msg.data).cast('B')  # type: ignore[attr-defined]
    if len(data) != height * step:
        msg_ = (
            f'image data has {len(data)} bytes; expected height * step = {height} * {step} = {height * step} '
            f'({width}x{height} {encoding})'
        )
        raise InputError(msg_)
    dtype = spec.dtype.newbyteorder('>' if msg.is_bigendian else '<')  # type: ignore[attr-defined]
    rows = np.frombuffer(data, dtype=np.uint8).reshape(height, step)[:, :row_bytes]
    array = rows.view(dtype) if rows.flags.c_contiguous else np.ascontiguousarray(rows).view(dtype)
    array = array.reshape(height, width, spec.channels)
    if not dtype.isnative:
        array = array.astype(spec.dtype)
    return array[:, :, 0] if spec.channels == 1 else array


def fill_image(msg: object, array: NDArray[np.generic], encoding: str) -> object:
    """Fill ``msg`` (a ``sensor_msgs/Image``) from ``array`` in ``encoding``; header is left to the caller."""
    if encoding not in ENCODINGS:
        msg_ = f'unsupported image encoding {encoding!r}; expected one of {sorted(ENCODINGS)}'
        raise InputError(msg_)
    spec = ENCODINGS[encoding]
    expected_ndim = 2 if spec.channels == 1 else 3
    if array.ndim == 3 and spec.channels == 1 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim != expected_ndim or (expected_ndim == 3 and array.shape[2] != spec.channels):
        msg_ = f'array of shape {array.shape} does not fit encoding {encoding} ({spec.channels} channels)'
        raise InputError(msg_)
    if array.dtype != spec.dtype:
        msg_ = f'array dtype {array.dtype} does not fit encoding {encoding} (expected {spec.dtype})'
        raise InputError(msg_)
    height, width = array.shape[:2]
    msg.height = height  # type: ignore[attr-defined]
    msg.width = width  # type: ignore[attr-defined]
    msg.encoding = encoding  # type: ignore[attr-defined]
    msg.is_bigendian = sys.byteorder == 'big'  # type: ignore[attr-defined]
    msg.step = width * spec.channels * spec.dtype.itemsize  # type: ignore[attr-defined]
    # bytes, not the ndarray: rclpy converts an ndarray element by element (~330 ms per 720p frame).
    msg.data = np.ascontiguousarray(array).tobytes()  # type: ignore[attr-defined]
    return msg


AUDIO_FORMATS: dict[str, np.dtype] = {'F32LE': np.dtype('<f4'), 'S16LE': np.dtype('<i2')}


def audio_to_array(msg: object) -> NDArray[np.float32]:
    """Samples of an ``anon_ros_msgs/AudioStamped`` as float32 (frames, channels) in [-1, 1]."""
    fmt: str = msg.sample_format  # type: ignore[attr-defined]
    channels: int = msg.channels  # type: ignore[attr-defined]
    if fmt not in AUDIO_FORMATS:
        msg_ = f'unsupported audio sample_format {fmt!r}; expected one of {sorted(AUDIO_FORMATS)}'
        raise InputError(msg_)
    if channels < 1:
        msg_ = f'audio chunk has {channels} channels; expected at least 1'
        raise InputError(msg_)
    if msg.sample_rate <= 0:  # type: ignore[attr-defined]
        msg_ = f'audio chunk has sample_rate {msg.sample_rate}; expected a positive rate'  # type: ignore[attr-defined]
        raise InputError(msg_)
    dtype = AUDIO_FORMATS[fmt]
    data = memoryview(msg.data).cast('B')  # type: ignore[attr-defined]
    frame_bytes = channels * dtype.itemsize
    if len(data) % frame_bytes:
        msg_ = f'audio data has {len(data)} bytes, not a multiple of channels * sample size = {frame_bytes} ({fmt})'
        raise InputError(msg_)
    samples = np.frombuffer(data, dtype=dtype).reshape(-1, channels)
    if fmt == 'S16LE':
        return samples.astype(np.float32) / 32768.0
    return samples.astype(np.float32, copy=False)


def fill_audio(msg: object, samples: NDArray[np.floating], sample_rate: int, sample_format: str = 'F32LE') -> object:
    """Fill an ``anon_ros_msgs/AudioStamped`` from float samples (frames,) or (frames, channels); header by caller."""
    if sample_format not in AUDIO_FORMATS:
        msg_ = f'unsupported audio sample_format {sample_format!r}; expected one of {sorted(AUDIO_FORMATS)}'
        raise InputError(msg_)
    frames = samples.reshape(-1, 1) if samples.ndim == 1 else samples
    if frames.ndim != 2:
        msg_ = f'audio samples of shape {samples.shape}; expected (frames,) or (frames, channels)'
        raise InputError(msg_)
    if sample_format == 'S16LE':
        data = np.clip(np.round(frames * 32768.0), -32768, 32767).astype('<i2')
    else:
        data = frames.astype('<f4', copy=False)
    msg.sample_rate = int(sample_rate)  # type: ignore[attr-defined]
    msg.channels = int(frames.shape[1])  # type: ignore[attr-defined]
    msg.sample_format = sample_format  # type: ignore[attr-defined]
    msg.data = np.ascontiguousarray(data).tobytes()  # type: ignore[attr-defined]
    return msg
