"""A real, throw-away PulseAudio server for tests and benchmarks: a virtual microphone without a sound card.

``pulseaudio_server()`` starts a user-mode ``pulseaudio`` (no system daemon, no autospawn, nothing of the user's
configuration) whose socket lives in a temporary directory, loads a ``module-null-sink`` (what anon_ros plays
into) and a ``module-remap-source`` of its monitor (what a call application records as its microphone), points
``PULSE_SERVER`` at it for this process and its children, and removes everything on exit::

    with pulseaudio_server() as pa:
        with Recorder(pa) as rec:
            rec.wait_ready()
            play(pa, tone)
        lag, score = locate(tone, rec.signal())

Python reaches the server through ALSA's ``pulse`` device (PortAudio on Debian has no PulseAudio host API).
PortAudio lists that device only if a server answered when it initialized (at ``import sounddevice``), so the
server is started before PortAudio is re-initialized (``reinit_portaudio()``, done by ``pulseaudio_server``);
the ALSA plugin then reads ``PULSE_SERVER`` each time a stream opens.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from anon_ros.core.devices import DeviceError, find_device, import_sounddevice, pulse_env
from anon_ros.core.errors import AnonRosError

DEBIAN_PACKAGES = ('pulseaudio', 'pulseaudio-utils', 'libasound2-plugins', 'libportaudio2')


class PulseAudioError(AnonRosError):
    """The pulseaudio binary is missing or the server did not come up."""


@dataclass(frozen=True)
class PulseAudioServer:
    """A running test server: where it listens and the names of its virtual sink and source."""

    pid: int
    runtime_dir: Path
    server: str
    sink: str
    source: str
    sample_rate: int
    channels: int
    log_file: Path

    def pactl(self, *args: str) -> str:
        """Run ``pactl`` against this server and return its output."""
        pactl = shutil.which('pactl')
        if pactl is None:
            msg = f'pactl not found; Debian packages: {" ".join(DEBIAN_PACKAGES)}'
            raise PulseAudioError(msg)
        return subprocess.run([pactl, '-s', self.server, *args], capture_output=True, text=True, check=True,
                              timeout=10).stdout


def pulseaudio_available() -> bool:
    """Whether a pulseaudio binary is on PATH (for ``pytest.mark.skipif``)."""
    return shutil.which('pulseaudio') is not None


def _default_pa(socket_path: Path, sink: str, source: str, sample_rate: int, channels: int) -> str:
    return '\n'.join([
        f'load-module module-native-protocol-unix auth-anonymous=1 socket={socket_path}',
        f'load-module module-null-sink sink_name={sink} rate={sample_rate} channels={channels} '
        f'sink_properties=device.description={sink}',
        f'load-module module-remap-source source_name={source} master={sink}.monitor '
        f'source_properties=device.description={source}',
        f'set-default-sink {sink}',
        f'set-default-source {source}',
        '',
    ])


def _wait_for_socket(path: Path, proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return
        if path.exists():
            with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.connect(str(path))
                return
        time.sleep(0.05)


@contextlib.contextmanager
def pulseaudio_server(
    sink: str = 'anon_sink',
    source: str = 'anon_mic',
    sample_rate: int = 48_000,
    channels: int = 1,
    startup_timeout_s: float = 10.0,
    reinit: bool = True,
    keepalive: bool = True,
) -> Iterator[PulseAudioServer]:
    """Run a private PulseAudio server with a null sink and a remapped monitor source; clean up on exit.

    With ``reinit`` (and sounddevice already imported) PortAudio is re-initialized once the server is up, so its
    device list includes ``pulse``; no PortAudio stream may be open at that moment. With ``keepalive`` a ``pacat``
    plays silence into the sink so that new playback streams start at once (see ``_start_keepers``).
    """
    binary = shutil.which('pulseaudio')
    if binary is None:
        msg = f'pulseaudio not found on PATH; install the Debian packages: apt-get install {" ".join(DEBIAN_PACKAGES)}'
        raise PulseAudioError(msg)
    tmp = Path(tempfile.mkdtemp(prefix='anon_ros_pulse_'))
    runtime, state, config = tmp / 'runtime', tmp / 'state', tmp / 'config'
    for d in (runtime, state, config):
        d.mkdir(mode=0o700)
    sock = runtime / 'native'
    script = tmp / 'default.pa'
    script.write_text(_default_pa(sock, sink, source, sample_rate, channels))
    client_conf = tmp / 'client.conf'
    client_conf.write_text('autospawn = no\n')  # a client must never start a daemon of its own
    log_file = tmp / 'pulseaudio.log'
    server_env = {
        **os.environ,
        'HOME': str(tmp),
        'XDG_CONFIG_HOME': str(config),
        'XDG_RUNTIME_DIR': str(runtime),
        'PULSE_RUNTIME_PATH': str(runtime),
        'PULSE_STATE_PATH': str(state),
    }
    for k in ('PULSE_SERVER', 'PULSE_SINK', 'PULSE_SOURCE'):
        server_env.pop(k, None)
    cmd = [binary, '--daemonize=no', '--exit-idle-time=-1', '-n', '-F', str(script), '--use-pid-file=no',
           '--system=no', f'--log-target=file:{log_file}', '--log-level=notice']
    proc = subprocess.Popen(cmd, env=server_env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    client_vars = {
        'PULSE_SERVER': f'unix:{sock}',
        'PULSE_CLIENTCONFIG': str(client_conf),
        'PULSE_COOKIE': str(config / 'pulse' / 'cookie'),
    }
    saved = {k: os.environ.get(k) for k in client_vars}
    keepers: list[subprocess.Popen[bytes]] = []
    try:
        _wait_for_socket(sock, proc, startup_timeout_s)
        if proc.poll() is not None or not sock.exists():
            log = log_file.read_text(errors='replace')[-2000:] if log_file.exists() else ''
            msg = f'pulseaudio did not start (exit code {proc.poll()}); log tail:\n{log}'
            raise PulseAudioError(msg)
        os.environ.update(client_vars)
        keepers = _start_keepers(client_vars['PULSE_SERVER'], sink, sample_rate, channels) if keepalive else []
        if reinit:
            reinit_portaudio()  # PortAudio probed ALSA's 'pulse' device at import, maybe with no server up
        yield PulseAudioServer(proc.pid, runtime, client_vars['PULSE_SERVER'], sink, source, sample_rate, channels,
                               log_file)
    finally:
        for keeper in keepers:
            _stop(keeper)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        _stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def _start_keepers(server: str, sink: str, sample_rate: int, channels: int) -> list[subprocess.Popen[bytes]]:
    """Play silence into the sink at 10 ms latency for as long as the server runs.

    An idle null sink renders 2 s blocks, and a stream that connects then waits up to 2 s for its first
    callback (measured: 1.4 s gaps, PortAudio through ALSA's pulse plugin). A permanent low-latency client keeps
    the blocks short; adding zeros changes nothing in the mix. (A remapped source's 1.4 s start-up is not
    helped by this: see ``Recorder.wait_ready``.)
    """
    pacat = shutil.which('pacat')
    if pacat is None:
        return []
    cmd = [pacat, '--playback', '-s', server, '-d', sink, '--raw', '--format=s16le', f'--rate={sample_rate}',
           f'--channels={channels}', '--latency-msec=10', '--client-name=anon_ros_keepalive', '/dev/zero']
    return [subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]


def reinit_portaudio() -> None:
    """Make PortAudio re-read its device list (after starting a server). Only while no stream is open."""
    if 'sounddevice' in sys.modules:
        sd = sys.modules['sounddevice']
        sd._terminate()
        sd._initialize()


def play(server: PulseAudioServer, samples: np.ndarray, device: str = 'pulse') -> None:
    """Play float32 ``(n,)`` or ``(n, channels)`` samples into the server's sink and wait until done."""
    sd = import_sounddevice()
    with pulse_env(PULSE_SINK=server.sink):
        sd.play(samples, samplerate=server.sample_rate, device=find_device(sd, device, 'output'), blocking=False)
    sd.wait()


class Recorder:
    """Records the server's virtual microphone (the remapped monitor) in the background while in a ``with``.

    A remapped source delivers its first block only 1.4-1.8 s after a client connects (measured with PulseAudio
    16.1; the monitor itself starts at once), so call :meth:`wait_ready` before playing what must be recorded.
    Each block's arrival on ``time.monotonic()`` is kept for latency measurements.
    """

    def __init__(self, server: PulseAudioServer, device: str = 'pulse', block_size: int = 480) -> None:
        self.server = server
        self.device = device
        self.block_size = block_size
        self._blocks: list[np.ndarray] = []
        self._arrivals: list[float] = []
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._stream: Any = None

    def _callback(self, indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:  # noqa: ARG002
        now = time.monotonic()
        with self._lock:
            self._blocks.append(indata.copy())
            self._arrivals.append(now)
        self._ready.set()

    def __enter__(self) -> Recorder:
        sd = import_sounddevice()
        s = self.server
        try:
            with pulse_env(PULSE_SOURCE=s.source):
                self._stream = sd.InputStream(device=find_device(sd, self.device, 'input'), samplerate=s.sample_rate,
                                              channels=s.channels, dtype='float32', blocksize=self.block_size,
                                              latency='low', callback=self._callback)
                self._stream.start()
        except sd.PortAudioError as err:
            msg = f'cannot record PulseAudio source {s.source!r}: {err}'
            raise DeviceError(msg) from err
        return self

    def wait_ready(self, timeout_s: float = 5.0) -> None:
        """Block until audio flows; DeviceError if none came within ``timeout_s``."""
        if not self._ready.wait(timeout_s):
            msg = f'no audio from PulseAudio source {self.server.source!r} within {timeout_s} s'
            raise DeviceError(msg)

    def __exit__(self, *exc: object) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.stop()
            stream.close()

    def signal(self) -> np.ndarray:
        """Everything recorded so far, ``(n, channels)`` float32."""
        with self._lock:
            if not self._blocks:
                return np.zeros((0, self.server.channels), np.float32)
            return np.concatenate(self._blocks)

    def arrival_of(self, index: int) -> float:
        """``time.monotonic()`` at which the block holding sample ``index`` of :meth:`signal` was delivered."""
        with self._lock:
            total = 0
            for block, t in zip(self._blocks, self._arrivals, strict=True):
                total += len(block)
                if index < total:
                    return t - (total - 1 - index) / self.server.sample_rate
        msg = f'sample {index} was not recorded'
        raise IndexError(msg)


def locate(reference: np.ndarray, recording: np.ndarray) -> tuple[int, float]:
    """Where ``reference`` starts in ``recording`` (samples) and the normalized cross-correlation there (0..1)."""
    from scipy.signal import correlate

    ref = np.asarray(reference, np.float64).reshape(len(reference), -1)[:, 0]
    rec = np.asarray(recording, np.float64).reshape(len(recording), -1)[:, 0]
    if len(rec) < len(ref) or not np.any(ref):
        return -1, 0.0
    corr = correlate(rec, ref, mode='valid', method='fft')
    lag = int(np.argmax(np.abs(corr)))
    window = rec[lag:lag + len(ref)]
    norm = float(np.linalg.norm(ref) * np.linalg.norm(window))
    return lag, float(abs(corr[lag]) / norm) if norm > 0 else 0.0
