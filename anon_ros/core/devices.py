"""Virtual devices for calls: a microphone (PortAudio into e.g. a PulseAudio null sink) and a camera (pyvirtualcam).

A call application (Zoom, Jitsi, a browser) picks the anonymized streams up as if they came from a real microphone
and camera. Both sinks only ever emit what they are given (already anonymized) or silence / black: on underrun the
microphone plays silence, never old or raw audio.

``sounddevice`` and ``pyvirtualcam`` are imported when a device opens, so this module imports on machines without
PortAudio or pyvirtualcam; a missing library, device or kernel module raises :class:`DeviceError` saying which and
how to get it.

PulseAudio sinks are reached through ALSA's ``pulse`` device: PortAudio on Debian has no PulseAudio host API. The
sink to play into is chosen with the ``PULSE_SINK`` variable, which libpulse reads when the ALSA device opens; it is
set only around the open, under a lock.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from typing import Any

import numpy as np

from anon_ros.core.errors import DeviceError, InputError

_ENV_LOCK = threading.Lock()
_PORTAUDIO_HINT = 'install PortAudio (Debian: apt-get install libportaudio2) and the sounddevice package'
_PULSE_HINT = 'Debian packages: pulseaudio pulseaudio-utils libasound2-plugins libportaudio2'


@contextlib.contextmanager
def pulse_env(**variables: str | None) -> Iterator[None]:
    """Set ``PULSE_*`` variables (None: leave as is) while an ALSA ``pulse`` device opens, then restore them."""
    with _ENV_LOCK:
        saved = {k: os.environ.get(k) for k in variables}
        try:
            for k, v in variables.items():
                if v is not None:
                    os.environ[k] = v
            yield
        finally:
            for k, old in saved.items():
                if old is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = old


def import_sounddevice() -> Any:
    """``sounddevice``, or a DeviceError saying how to install PortAudio."""
    try:
        import sounddevice
    except (ImportError, OSError) as err:
        msg = f'cannot load sounddevice/PortAudio ({err}); {_PORTAUDIO_HINT}'
        raise DeviceError(msg) from err
    return sounddevice


def list_pulse_sinks() -> list[str] | None:
    """Names of the PulseAudio sinks of the current server (``PULSE_SERVER``), or None if ``pactl`` is missing."""
    pactl = shutil.which('pactl')
    if pactl is None:
        return None
    try:
        out = subprocess.run([pactl, 'list', 'short', 'sinks'], capture_output=True, text=True, timeout=10,
                             check=True).stdout
    except (subprocess.SubprocessError, OSError) as err:
        msg = f'cannot list PulseAudio sinks with pactl ({err}); is a PulseAudio server running? {_PULSE_HINT}'
        raise DeviceError(msg) from err
    return [line.split('\t')[1] for line in out.splitlines() if '\t' in line]


def find_device(sd: Any, name: str, kind: str) -> int:
    """Index of the PortAudio device called ``name`` (exact, else unique substring) with ``kind`` channels.

    ``kind`` is ``'output'`` or ``'input'``.
    """
    key = f'max_{kind}_channels'
    devices = [(i, d['name']) for i, d in enumerate(sd.query_devices()) if d[key] > 0]
    exact = [i for i, n in devices if n == name]
    if exact:
        return exact[0]
    partial = [i for i, n in devices if name.lower() in n.lower()]
    if len(partial) == 1:
        return partial[0]
    available = ', '.join(repr(n) for _, n in devices) or 'none'
    why = 'is ambiguous' if partial else 'not found'
    msg = f'audio {kind} device {name!r} {why}; available {kind} devices: {available}'
    raise DeviceError(msg)


class JitterBuffer:
    """Thread-safe FIFO between a producer of audio chunks and a device callback that reads fixed blocks.

    It starts (and restarts after running dry) only once ``prefill`` frames are queued, so network/processing
    jitter does not turn into a click every block. Reads past the end give silence; a read never returns data
    twice. The latency stays bounded: when more than ``max_level`` frames are queued (the device stalled, or
    its clock runs slower than the sensor's), the oldest are dropped down to ``prefill``.
    """

    def __init__(self, channels: int, max_level: int, prefill: int) -> None:
        if channels < 1 or max_level < 1 or not 0 <= prefill < max_level:
            msg = f'need channels >= 1 and 0 <= prefill < max_level; got {channels}, {prefill}, {max_level}'
            raise InputError(msg)
        self.channels = channels
        self.max_level = max_level
        self.prefill = prefill
        self.capacity = 2 * max_level  # room for one write on top of a full queue
        self._data = np.zeros((self.capacity, channels), np.float32)
        self._start = 0
        self._level = 0
        self._priming = True
        self._lock = threading.Lock()
        self.underrun_frames = 0
        self.dropped_frames = 0

    @property
    def level(self) -> int:
        """Frames queued."""
        return self._level

    def write(self, samples: np.ndarray) -> None:
        """Queue ``(n, channels)`` float32 samples."""
        if samples.ndim != 2 or samples.shape[1] != self.channels:
            msg = f'expected samples of shape (n, {self.channels}), got {samples.shape}'
            raise InputError(msg)
        with self._lock:
            n = len(samples)
            if n > self.max_level:  # more than the latency bound in one go: keep the newest
                self.dropped_frames += n - self.max_level
                samples, n = samples[-self.max_level:], self.max_level
            end = (self._start + self._level) % self.capacity
            first = min(n, self.capacity - end)
            self._data[end:end + first] = samples[:first]
            self._data[:n - first] = samples[first:]
            self._level += n
            if self._level > self.max_level:  # fresh audio matters more in a call than complete audio
                excess = self._level - max(self.prefill, n)
                self._start = (self._start + excess) % self.capacity
                self._level -= excess
                self.dropped_frames += excess

    def read(self, n: int) -> np.ndarray:
        """Dequeue ``n`` frames; silence where none are queued (and while priming)."""
        out = np.zeros((n, self.channels), np.float32)
        with self._lock:
            if self._priming:
                if self._level < max(self.prefill, 1):
                    return out
                self._priming = False
            m = min(n, self._level)
            first = min(m, self.capacity - self._start)
            out[:first] = self._data[self._start:self._start + first]
            out[first:m] = self._data[:m - first]
            self._start = (self._start + m) % self.capacity
            self._level -= m
            if m < n:
                self.underrun_frames += n - m
                self._priming = True
        return out


@dataclass(frozen=True)
class MicrophoneConfig:
    """Where and how :class:`VirtualMicrophone` plays.

    ``device`` is a PortAudio output device name (exact or a unique part of it; ``pulse`` reaches PulseAudio).
    ``pulse_sink``, if given, is the PulseAudio sink to play into (e.g. a ``module-null-sink`` whose monitor a
    ``module-remap-source`` turns into a microphone for call apps).
    """

    device: str = 'pulse'
    pulse_sink: str | None = None
    sample_rate: int = 48_000
    channels: int = 1
    block_size: int = 480
    prefill_s: float = 0.04
    max_queue_s: float = 0.15
    device_latency_s: float = 0.02

    def __post_init__(self) -> None:
        if not self.device:
            msg = 'MicrophoneConfig.device must name an audio output device'
            raise InputError(msg)
        for name in ('sample_rate', 'channels', 'block_size'):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                msg = f'MicrophoneConfig.{name} must be an int >= 1, got {value!r}'
                raise InputError(msg)
        for name in ('prefill_s', 'max_queue_s', 'device_latency_s'):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                msg = f'MicrophoneConfig.{name} must be a finite number >= 0 (seconds), got {value!r}'
                raise InputError(msg)
        if self.prefill_s >= self.max_queue_s:
            msg = f'MicrophoneConfig.prefill_s ({self.prefill_s}) must be below max_queue_s ({self.max_queue_s})'
            raise InputError(msg)


class VirtualMicrophone:
    """Plays anonymized audio chunks into an audio output device through a :class:`JitterBuffer`."""

    def __init__(self, config: MicrophoneConfig | None = None) -> None:
        self.config = config if config is not None else MicrophoneConfig()
        c = self.config
        self.buffer = JitterBuffer(c.channels, round(c.max_queue_s * c.sample_rate),
                                   round(c.prefill_s * c.sample_rate))
        self._stream: Any = None
        self.device_underflows = 0

    def start(self) -> None:
        """Open and start the output stream; DeviceError if the device or sink does not exist."""
        if self._stream is not None:
            return
        c = self.config
        sd = import_sounddevice()
        index = find_device(sd, c.device, 'output')
        if c.pulse_sink is not None:
            sinks = list_pulse_sinks()
            if sinks is not None and c.pulse_sink not in sinks:
                msg = f'PulseAudio sink {c.pulse_sink!r} not found; available sinks: {", ".join(sinks) or "none"}'
                raise DeviceError(msg)
        try:
            with pulse_env(PULSE_SINK=c.pulse_sink):
                stream = sd.OutputStream(device=index, samplerate=c.sample_rate, channels=c.channels,
                                         dtype='float32', blocksize=c.block_size, latency=c.device_latency_s,
                                         callback=self._callback)
                stream.start()
        except sd.PortAudioError as err:
            target = f'{c.device!r}' + (f' (PulseAudio sink {c.pulse_sink!r})' if c.pulse_sink else '')
            msg = f'cannot open audio output {target}: {err}'
            raise DeviceError(msg) from err
        self._stream = stream

    def _callback(self, outdata: np.ndarray, frames: int, time: Any, status: Any) -> None:  # noqa: ARG002
        # PortAudio's thread: no allocation-heavy work, no logging, no exceptions.
        if status.output_underflow:
            self.device_underflows += 1
        outdata[:] = self.buffer.read(frames)

    def write(self, samples: np.ndarray) -> None:
        """Queue ``(n, channels)`` (or ``(n,)`` for mono) float32 samples at the configured rate."""
        if samples.ndim == 1 and self.config.channels == 1:
            samples = samples[:, None]
        if samples.dtype != np.float32:
            msg = f'expected float32 samples, got {samples.dtype}'
            raise InputError(msg)
        self.buffer.write(samples)

    @property
    def latency_s(self) -> float:
        """Nominal delay from :meth:`write` to the device output: the prefill plus PortAudio's output latency."""
        device = float(self._stream.latency) if self._stream is not None else self.config.device_latency_s
        return self.config.prefill_s + device

    @property
    def active(self) -> bool:
        """Whether the stream is open and running."""
        return self._stream is not None and bool(self._stream.active)

    def close(self) -> None:
        """Stop and close the stream; idempotent."""
        stream, self._stream = self._stream, None
        if stream is not None:
            with contextlib.suppress(Exception):
                stream.stop()
            stream.close()

    def __enter__(self) -> VirtualMicrophone:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class CameraFormat(Enum):
    """Pixel formats the virtual camera is fed with (pyvirtualcam's names)."""

    RGB = 'RGB'
    BGR = 'BGR'
    GRAY = 'GRAY'


class FitMode(Enum):
    """How a frame of another size is fitted to the camera."""

    STRETCH = 'stretch'
    LETTERBOX = 'letterbox'


@dataclass(frozen=True)
class CameraConfig:
    """What :class:`VirtualCamera` opens: size, rate, format, and optionally a device and pyvirtualcam backend."""

    width: int = 1280
    height: int = 720
    fps: float = 30.0
    fmt: CameraFormat = CameraFormat.RGB
    fit: FitMode = FitMode.LETTERBOX
    device: str | None = None
    backend: str | None = None

    def __post_init__(self) -> None:
        for name in ('width', 'height'):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 2 or value % 2:
                msg = f'CameraConfig.{name} must be an even int >= 2, got {value!r}'
                raise InputError(msg)
        if not isinstance(self.fps, (int, float)) or not math.isfinite(self.fps) or self.fps <= 0:
            msg = f'CameraConfig.fps must be a positive number, got {self.fps!r}'
            raise InputError(msg)
        if not isinstance(self.fmt, CameraFormat) or not isinstance(self.fit, FitMode):
            msg = f'CameraConfig.fmt/fit must be CameraFormat/FitMode members, got {self.fmt!r}/{self.fit!r}'
            raise InputError(msg)


_CHANNELS = {'rgb8': 3, 'bgr8': 3, 'rgba8': 4, 'bgra8': 4, 'mono8': 1}


def _to_rgb(image: np.ndarray, encoding: str) -> np.ndarray:
    if encoding == 'rgb8':
        return image
    if encoding == 'bgr8':
        return image[..., ::-1]
    if encoding == 'rgba8':
        return image[..., :3]
    if encoding == 'bgra8':
        return image[..., 2::-1]
    if encoding == 'mono8':
        return np.repeat(image[..., None] if image.ndim == 2 else image, 3, axis=2)
    msg = f'unsupported encoding {encoding!r}; expected one of {sorted(_CHANNELS)}'
    raise InputError(msg)


def _resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    if image.shape[1] == width and image.shape[0] == height:
        return image
    try:
        import cv2
    except ImportError:  # nearest neighbour keeps the module usable without OpenCV
        rows = np.arange(height) * image.shape[0] // height
        cols = np.arange(width) * image.shape[1] // width
        return np.asarray(image[rows][:, cols])
    shrink = width < image.shape[1] or height < image.shape[0]
    return cv2.resize(np.ascontiguousarray(image), (width, height),
                      interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def convert_frame(image: np.ndarray, encoding: str, config: CameraConfig) -> np.ndarray:
    """An ``encoding`` (sensor_msgs name) uint8 image as the camera's format and size, C-contiguous."""
    channels = _CHANNELS.get(encoding)
    if channels is None:
        msg = f'unsupported encoding {encoding!r}; expected one of {sorted(_CHANNELS)}'
        raise InputError(msg)
    expected_ndim = {1: (2, 3), 3: (3,), 4: (3,)}[channels]
    if (not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim not in expected_ndim
            or (image.ndim == 3 and image.shape[2] != channels) or min(image.shape[:2]) < 1):
        got = f'{image.dtype} {image.shape}' if isinstance(image, np.ndarray) else type(image).__name__
        msg = f'expected a uint8 (h, w{", " + str(channels) if channels > 1 else ""}) {encoding} image, got {got}'
        raise InputError(msg)
    rgb = _to_rgb(image, encoding)
    w, h = config.width, config.height
    if config.fit is FitMode.STRETCH:
        fitted = _resize(rgb, w, h)
    elif config.fit is FitMode.LETTERBOX:
        scale = min(w / rgb.shape[1], h / rgb.shape[0])
        sw, sh = max(1, round(rgb.shape[1] * scale)), max(1, round(rgb.shape[0] * scale))
        fitted = np.zeros((h, w, 3), np.uint8)
        x0, y0 = (w - sw) // 2, (h - sh) // 2
        fitted[y0:y0 + sh, x0:x0 + sw] = _resize(rgb, sw, sh)
    else:
        msg = f'unknown fit mode {config.fit!r}'
        raise InputError(msg)
    if config.fmt is CameraFormat.RGB:
        out = fitted
    elif config.fmt is CameraFormat.BGR:
        out = fitted[..., ::-1]
    elif config.fmt is CameraFormat.GRAY:  # ITU-R BT.601 luma, as video range-agnostic apps expect
        out = (fitted @ np.array([0.299, 0.587, 0.114], np.float32)).round().clip(0, 255).astype(np.uint8)
    else:
        msg = f'unknown camera format {config.fmt!r}'
        raise InputError(msg)
    return np.ascontiguousarray(out)


class VirtualCamera:
    """Sends anonymized frames to a virtual camera through pyvirtualcam (v4l2loopback on Linux)."""

    def __init__(self, config: CameraConfig | None = None) -> None:
        self.config = config if config is not None else CameraConfig()
        self._cam: Any = None

    def start(self) -> None:
        """Open the camera; DeviceError if pyvirtualcam, the backend or the loopback device is missing."""
        if self._cam is not None:
            return
        c = self.config
        try:
            import pyvirtualcam
            from pyvirtualcam import camera as pvc_camera
        except ImportError as err:
            msg = f'cannot import pyvirtualcam ({err}); install it with pip install pyvirtualcam'
            raise DeviceError(msg) from err
        backends = sorted(pvc_camera.BACKENDS)
        if c.backend is not None and c.backend not in backends:
            msg = f'pyvirtualcam backend {c.backend!r} is not registered; registered backends: {", ".join(backends)}'
            raise DeviceError(msg)
        try:
            self._cam = pyvirtualcam.Camera(c.width, c.height, c.fps, fmt=pyvirtualcam.PixelFormat[c.fmt.value],
                                            device=c.device, backend=c.backend)
        except Exception as err:  # pyvirtualcam reports every backend failure as RuntimeError/ValueError
            where = f'device {c.device!r}' if c.device else 'any device'
            hint = ''
            if 'v4l2' in str(err).lower():
                hint = (' -- on Linux load the v4l2loopback kernel module (Debian: apt-get install v4l2loopback-dkms; '
                        'modprobe v4l2loopback devices=1 exclusive_caps=1)')
            tried = c.backend or ', '.join(backends)
            msg = f'cannot open a virtual camera ({where}, backends tried: {tried}): {err}{hint}'
            raise DeviceError(msg) from err

    @property
    def device(self) -> str | None:
        """The device the camera sends to, once started."""
        return None if self._cam is None else str(self._cam.device)

    def send(self, image: np.ndarray, encoding: str) -> None:
        """Convert ``image`` to the camera's size/format and send it (no pacing: call it at the stream's rate)."""
        if self._cam is None:
            msg = 'VirtualCamera.send called before start()'
            raise DeviceError(msg)
        self._cam.send(convert_frame(image, encoding, self.config))

    def send_blank(self) -> None:
        """Send a black frame: what the call sees when no anonymized frame can be trusted."""
        c = self.config
        self.send(np.zeros((c.height, c.width, 3), np.uint8), 'rgb8')

    @property
    def frames_sent(self) -> int:
        """Frames handed to pyvirtualcam since start."""
        return 0 if self._cam is None else int(self._cam.frames_sent)

    def close(self) -> None:
        """Close the camera; idempotent."""
        cam, self._cam = self._cam, None
        if cam is not None:
            cam.close()

    def __enter__(self) -> VirtualCamera:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
