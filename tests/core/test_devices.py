"""Virtual microphone and camera.

The microphone is tested end to end against a REAL user-mode PulseAudio server (anon_ros.testing.pulseaudio):
a known signal written to VirtualMicrophone goes into a null sink and is found again, by cross-correlation, in
the recording of the sink's remapped monitor, which is what a call application would use as its microphone.

These machines have no v4l2 device (no kernel modules), so the camera is tested through a pyvirtualcam backend
registered by the test that captures the frames it is sent; only the "missing v4l2loopback" error is tested
against the real v4l2loopback backend.
"""

from __future__ import annotations

import glob
import time
from collections.abc import Iterator

import numpy as np
import pytest

from anon_ros.core.devices import (
    CameraConfig,
    CameraFormat,
    DeviceError,
    FitMode,
    JitterBuffer,
    MicrophoneConfig,
    VirtualCamera,
    VirtualMicrophone,
    convert_frame,
)
from anon_ros.core.errors import InputError
from anon_ros.testing import pulseaudio as pa
from anon_ros.testing.virtualcam import CapturingBackend, capturing_backend

FS = 48_000


# ---------------------------------------------------------------- jitter buffer (no device)

def test_jitter_buffer_primes_then_plays_in_order() -> None:
    jb = JitterBuffer(channels=1, max_level=100, prefill=30)
    jb.write(np.arange(1, 21, dtype=np.float32)[:, None])
    assert np.all(jb.read(10) == 0)  # still priming: 20 < 30
    jb.write(np.arange(21, 41, dtype=np.float32)[:, None])
    np.testing.assert_array_equal(jb.read(25)[:, 0], np.arange(1, 26))
    np.testing.assert_array_equal(jb.read(10)[:, 0], np.arange(26, 36))


def test_jitter_buffer_underrun_is_silence_never_stale() -> None:
    jb = JitterBuffer(channels=2, max_level=64, prefill=0)
    jb.write(np.ones((10, 2), np.float32))
    out = jb.read(16)
    assert np.all(out[:10] == 1) and np.all(out[10:] == 0)
    assert jb.underrun_frames == 6
    assert np.all(jb.read(16) == 0)  # nothing is played twice
    assert jb.level == 0


def test_jitter_buffer_bounds_latency_by_dropping_the_oldest() -> None:
    jb = JitterBuffer(channels=1, max_level=8, prefill=3)
    for start in range(1, 10, 3):  # 9 frames queued while the device is stalled: over max_level
        jb.write(np.arange(start, start + 3, dtype=np.float32)[:, None])
    assert jb.level == 3 and jb.dropped_frames == 6  # back to the prefill level, newest kept
    np.testing.assert_array_equal(jb.read(3)[:, 0], [7, 8, 9])
    jb.write(np.arange(1, 21, dtype=np.float32)[:, None])  # larger than the bound in one write
    np.testing.assert_array_equal(jb.read(8)[:, 0], np.arange(13, 21))


def test_jitter_buffer_wraps_around() -> None:
    jb = JitterBuffer(channels=1, max_level=5, prefill=0)
    got = []
    for start in range(1, 40, 4):
        jb.write(np.arange(start, start + 4, dtype=np.float32)[:, None])
        got.extend(jb.read(4)[:, 0].tolist())
    assert got == list(range(1, 41))


def test_jitter_buffer_rejects_wrong_shape() -> None:
    with pytest.raises(InputError, match=r'\(n, 2\)'):
        JitterBuffer(channels=2, max_level=8, prefill=0).write(np.zeros((4, 1), np.float32))


def test_microphone_config_validates() -> None:
    with pytest.raises(InputError, match='prefill_s'):
        MicrophoneConfig(prefill_s=1.0, max_queue_s=0.5)
    with pytest.raises(InputError, match='sample_rate'):
        MicrophoneConfig(sample_rate=0)


# ---------------------------------------------------------------- virtual microphone (real PulseAudio)

# scripts/setup.sh installs PulseAudio and PortAudio (requirements/debian.txt): without them these tests fail with
# the fixture's message naming the Debian packages, rather than being skipped.


@pytest.fixture(scope='module')
def pulse() -> Iterator[pa.PulseAudioServer]:
    with pa.pulseaudio_server(sink='anon_sink', source='anon_mic', sample_rate=FS, channels=1) as server:
        yield server


def test_missing_output_device_names_it_and_lists_the_available() -> None:
    mic = VirtualMicrophone(MicrophoneConfig(device='no_such_sound_card'))
    with pytest.raises(DeviceError, match=r"'no_such_sound_card' not found; available output devices: .*"):
        mic.start()


@pytest.mark.usefixtures('pulse')
def test_missing_pulse_sink_names_it_and_lists_the_available() -> None:
    mic = VirtualMicrophone(MicrophoneConfig(device='pulse', pulse_sink='no_such_sink'))
    with pytest.raises(DeviceError, match=r"sink 'no_such_sink' not found; available sinks: anon_sink"):
        mic.start()


def test_virtual_microphone_reaches_the_call_side_source(pulse: pa.PulseAudioServer) -> None:
    """A noise burst written in 20 ms chunks is recorded back from the remapped source, in full and in order."""
    rng = np.random.default_rng(7)
    burst = (0.25 * rng.standard_normal(FS // 2)).astype(np.float32)  # 0.5 s, white: a sharp correlation peak
    lead = np.zeros(FS // 10, np.float32)
    signal = np.concatenate([lead, burst, np.zeros(FS // 5, np.float32)])
    config = MicrophoneConfig(device='pulse', pulse_sink=pulse.sink, sample_rate=FS, channels=1)
    with pa.Recorder(pulse) as rec, VirtualMicrophone(config) as mic:
        rec.wait_ready()
        chunk = FS // 50
        t0 = time.monotonic()
        for start in range(0, len(signal), chunk):  # paced like a live 20 ms stream, on an absolute schedule
            mic.write(signal[start:start + chunk])
            time.sleep(max(0.0, t0 + (start + chunk) / FS - time.monotonic()))
        time.sleep(mic.latency_s + 0.3)
    recording = rec.signal()
    lag, score = pa.locate(burst, recording)
    assert score > 0.9, f'burst not found in the recording (normalized correlation {score:.2f})'
    found = recording[lag:lag + len(burst), 0]
    gain = float(np.dot(found, burst) / np.dot(burst, burst))
    assert gain == pytest.approx(1.0, abs=0.1)  # null sink + remap at unity volume
    assert mic.latency_s < 0.2
    assert mic.buffer.dropped_frames == 0


def test_recorder_and_play_helpers_round_trip_a_tone(pulse: pa.PulseAudioServer) -> None:
    t = np.arange(FS // 2) / FS
    tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    with pa.Recorder(pulse) as rec:
        rec.wait_ready()
        pa.play(pulse, tone)
        time.sleep(0.2)
    x = rec.signal()[:, 0]
    assert len(x) > FS // 4
    spectrum = np.abs(np.fft.rfft(x))
    peak = np.fft.rfftfreq(len(x), 1 / FS)[int(np.argmax(spectrum))]
    assert peak == pytest.approx(440, abs=5)


def test_missing_pulseaudio_binary_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pa.shutil, 'which', lambda _name: None)
    with pytest.raises(pa.PulseAudioError, match='pulseaudio pulseaudio-utils libasound2-plugins'), \
            pa.pulseaudio_server():
        pass


# ---------------------------------------------------------------- frame conversion

@pytest.mark.parametrize('encoding', ['rgb8', 'bgr8', 'rgba8', 'bgra8', 'mono8'])
@pytest.mark.parametrize('fmt', list(CameraFormat))
def test_convert_frame_every_encoding_to_every_format(encoding: str, fmt: CameraFormat) -> None:
    h, w = 48, 64
    rgb = np.zeros((h, w, 3), np.uint8)
    rgb[..., 0] = 200  # red
    image = {
        'rgb8': rgb,
        'bgr8': rgb[..., ::-1],
        'rgba8': np.dstack([rgb, np.full((h, w), 255, np.uint8)]),
        'bgra8': np.dstack([rgb[..., ::-1], np.full((h, w), 255, np.uint8)]),
        'mono8': np.full((h, w), 60, np.uint8),
    }[encoding]
    out = convert_frame(np.ascontiguousarray(image), encoding, CameraConfig(width=32, height=24, fmt=fmt))
    assert out.flags['C_CONTIGUOUS'] and out.dtype == np.uint8
    expected_rgb = (60, 60, 60) if encoding == 'mono8' else (200, 0, 0)
    if fmt is CameraFormat.RGB:
        assert out.shape == (24, 32, 3) and tuple(out[12, 16]) == expected_rgb
    elif fmt is CameraFormat.BGR:
        assert out.shape == (24, 32, 3) and tuple(out[12, 16]) == expected_rgb[::-1]
    elif fmt is CameraFormat.GRAY:
        luma = round(0.299 * expected_rgb[0] + 0.587 * expected_rgb[1] + 0.114 * expected_rgb[2])
        assert out.shape == (24, 32) and abs(int(out[12, 16]) - luma) <= 1
    else:
        raise AssertionError(fmt)


def test_convert_frame_letterbox_keeps_aspect_and_stretch_fills() -> None:
    square = np.full((100, 100, 3), 255, np.uint8)
    boxed = convert_frame(square, 'rgb8', CameraConfig(width=160, height=100, fit=FitMode.LETTERBOX))
    assert boxed.shape == (100, 160, 3)
    assert np.all(boxed[:, :30] == 0) and np.all(boxed[:, 130:] == 0) and np.all(boxed[:, 30:130] == 255)
    stretched = convert_frame(square, 'rgb8', CameraConfig(width=160, height=100, fit=FitMode.STRETCH))
    assert np.all(stretched == 255)


@pytest.mark.parametrize(
    ('image', 'encoding', 'match'),
    [
        (np.zeros((4, 4, 3), np.float32), 'rgb8', 'uint8'),
        (np.zeros((4, 4), np.uint8), 'rgb8', r'\(h, w, 3\)'),
        (np.zeros((4, 4, 3), np.uint8), 'yuv422', 'unsupported encoding'),
        (np.zeros((0, 4, 3), np.uint8), 'rgb8', 'uint8'),
    ],
)
def test_convert_frame_rejects_bad_input(image: np.ndarray, encoding: str, match: str) -> None:
    with pytest.raises(InputError, match=match):
        convert_frame(image, encoding, CameraConfig(width=8, height=8))


# ---------------------------------------------------------------- virtual camera (capturing backend)

@pytest.fixture
def capture_backend() -> Iterator[type[CapturingBackend]]:
    with capturing_backend() as backend:
        yield backend


def test_virtual_camera_sends_converted_frames(capture_backend: type[CapturingBackend]) -> None:
    """Frames of another size and encoding arrive at the (capturing) camera in its size and format."""
    config = CameraConfig(width=64, height=48, fps=30.0, fmt=CameraFormat.RGB, backend='anon_capture')
    bgr = np.zeros((96, 128, 3), np.uint8)
    bgr[..., 2] = 255  # red in BGR
    with VirtualCamera(config) as cam:
        assert cam.device == 'capture0'
        cam.send(bgr, 'bgr8')
        cam.send_blank()
        assert cam.frames_sent == 2
    assert capture_backend.opened['closed'] is True
    assert (capture_backend.opened['width'], capture_backend.opened['height']) == (64, 48)
    first, blank = capture_backend.frames
    assert first.size == 64 * 48 * 3
    frame = first.reshape(48, 64, 3)
    assert np.all(frame[..., 0] == 255) and np.all(frame[..., 1:] == 0)
    assert not blank.any()


@pytest.mark.usefixtures('capture_backend')
def test_unknown_backend_lists_the_registered() -> None:
    with pytest.raises(DeviceError, match=r"backend 'nope' is not registered; registered backends: .*anon_capture"):
        VirtualCamera(CameraConfig(backend='nope')).start()


def test_send_before_start_is_an_error() -> None:
    with pytest.raises(DeviceError, match='before start'):
        VirtualCamera().send(np.zeros((8, 8, 3), np.uint8), 'rgb8')


@pytest.mark.skipif(bool(glob.glob('/dev/video*')), reason='a video device exists here')
def test_missing_v4l2loopback_is_a_clear_error() -> None:
    with pytest.raises(DeviceError, match='v4l2loopback'):
        VirtualCamera(CameraConfig(width=64, height=48, backend='v4l2loopback')).start()
