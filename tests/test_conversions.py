"""Image and audio message <-> array conversions, with the real generated message classes."""

from __future__ import annotations

import numpy as np
import pytest
from sensor_msgs.msg import Image

from anon_ros.conversions import ENCODINGS, audio_to_array, fill_audio, fill_image, image_to_array
from anon_ros.core.errors import InputError
from anon_ros_msgs.msg import AudioStamped


def _random_array(encoding: str, height: int = 5, width: int = 7) -> np.ndarray:
    spec = ENCODINGS[encoding]
    shape = (height, width) if spec.channels == 1 else (height, width, spec.channels)
    rng = np.random.default_rng(1)
    if spec.dtype.kind == 'f':
        return rng.normal(size=shape).astype(spec.dtype)
    return rng.integers(0, np.iinfo(spec.dtype).max, size=shape, dtype=spec.dtype)


@pytest.mark.parametrize('encoding', sorted(ENCODINGS))
def test_image_round_trip(encoding: str) -> None:
    array = _random_array(encoding)
    msg = fill_image(Image(), array, encoding)
    np.testing.assert_array_equal(image_to_array(msg), array)


def test_image_with_row_padding() -> None:
    array = _random_array('rgb8', 4, 3)
    msg = Image(height=4, width=3, encoding='rgb8', step=16)
    padded = np.zeros((4, 16), np.uint8)
    padded[:, :9] = array.reshape(4, 9)
    msg.data = padded.tobytes()
    np.testing.assert_array_equal(image_to_array(msg), array)


def test_big_endian_depth_is_converted() -> None:
    depth = np.array([[1000, 2500]], dtype=np.uint16)
    msg = Image(height=1, width=2, encoding='16UC1', step=4, is_bigendian=True)
    msg.data = depth.astype('>u2').tobytes()
    np.testing.assert_array_equal(image_to_array(msg), depth)


@pytest.mark.parametrize(
    ('fields', 'match'),
    [
        ({'encoding': 'yuv422', 'height': 2, 'width': 2, 'step': 4, 'data': bytes(8)}, 'unsupported image encoding'),
        ({'encoding': 'rgb8', 'height': 0, 'width': 0, 'step': 0, 'data': b''}, 'empty image'),
        ({'encoding': 'rgb8', 'height': 2, 'width': 2, 'step': 6, 'data': bytes(11)}, 'expected height'),
        ({'encoding': 'rgb8', 'height': 2, 'width': 2, 'step': 5, 'data': bytes(10)}, 'step 5 is smaller'),
    ],
)
def test_malformed_images_are_rejected_with_a_reason(fields: dict, match: str) -> None:
    with pytest.raises(InputError, match=match):
        image_to_array(Image(**fields))


def test_fill_image_rejects_mismatched_dtype() -> None:
    with pytest.raises(InputError, match='dtype float64'):
        fill_image(Image(), np.zeros((2, 2)), '32FC1')


@pytest.mark.parametrize('channels', [1, 2])
def test_audio_round_trip_f32_is_exact(channels: int) -> None:
    samples = np.random.default_rng(2).uniform(-1, 1, (480, channels)).astype(np.float32)
    msg = fill_audio(AudioStamped(), samples, 48000)
    assert (msg.sample_rate, msg.channels, msg.sample_format) == (48000, channels, AudioStamped.FORMAT_F32LE)
    np.testing.assert_array_equal(audio_to_array(msg), samples)


def test_audio_s16_round_trip_within_one_lsb() -> None:
    samples = np.linspace(-1, 1, 101, dtype=np.float32)
    back = audio_to_array(fill_audio(AudioStamped(), samples, 16000, 'S16LE'))
    assert np.max(np.abs(back[:, 0] - samples)) <= 1 / 32768


def test_audio_rejects_partial_frames() -> None:
    msg = AudioStamped(sample_rate=16000, channels=2, sample_format='F32LE')
    msg.data = bytes(12)
    with pytest.raises(InputError, match='not a multiple'):
        audio_to_array(msg)
