"""anon-ros anonymize-video: frames and sound both go through the anonymizers; frame rate, count and duration kept."""

from __future__ import annotations

import subprocess
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest

from anon_ros.core.sample_images import load_sample_image
from anon_ros.video import VideoError, anonymize_video, probe

W, H, FPS, N, RATE = 160, 128, 10, 12, 16000


def _frames() -> np.ndarray:
    rgb = cv2.resize(np.asarray(load_sample_image('astronaut')), (W + N, H))
    return np.stack([np.ascontiguousarray(rgb[:, i:i + W]) for i in range(N)])


def _voice(n: int) -> np.ndarray:
    t = np.arange(n) / RATE
    phase = 2 * np.pi * np.cumsum(130 + 15 * np.sin(2 * np.pi * 2 * t)) / RATE
    return (0.2 * sum(np.sin(k * phase) / k for k in range(1, 15))).astype(np.float32)


def make_video(path: Path, frames: np.ndarray, audio: np.ndarray | None) -> None:
    raw = path.with_suffix('.f32')
    cmd = ['ffmpeg', '-v', 'error', '-f', 'rawvideo', '-pix_fmt', 'rgb24', '-s', f'{W}x{H}', '-framerate', str(FPS),
           '-i', '-']
    if audio is not None:
        raw.write_bytes(audio.astype('<f4').tobytes())
        cmd += ['-f', 'f32le', '-ar', str(RATE), '-ac', '1', '-i', str(raw), '-c:a', 'flac']
    cmd += ['-c:v', 'ffv1', '-pix_fmt', 'rgb24', str(path)]
    subprocess.run(cmd, input=frames.tobytes(), check=True)


def read_frames(path: Path) -> np.ndarray:
    out = subprocess.run(['ffmpeg', '-v', 'error', '-i', str(path), '-f', 'rawvideo', '-pix_fmt', 'rgb24', '-'],
                         capture_output=True, check=True).stdout
    return np.frombuffer(out, np.uint8).reshape(-1, H, W, 3)


def read_audio(path: Path) -> np.ndarray:
    out = subprocess.run(['ffmpeg', '-v', 'error', '-i', str(path), '-map', '0:a:0', '-f', 'f32le', '-ar', str(RATE),
                          '-ac', '1', '-'], capture_output=True, check=True).stdout
    return np.frombuffer(out, '<f4')


class Negate:
    latency_samples = 11

    def __init__(self) -> None:
        self.buf = np.zeros(11, np.float32)

    def process(self, chunk: np.ndarray) -> np.ndarray:
        x = np.concatenate((self.buf, -chunk))
        self.buf = x[chunk.size:]
        return x[:chunk.size]

    def flush(self) -> np.ndarray:
        out, self.buf = self.buf, np.zeros(11, np.float32)
        return out

    def reset(self) -> None:
        self.buf[:] = 0


def test_lossless_round_trip_keeps_fps_frames_duration_and_aligned_sound(tmp_path: Path) -> None:
    frames, audio = _frames(), _voice(int(RATE * N / FPS))
    src, dst = tmp_path / 'in.mkv', tmp_path / 'out.mkv'
    make_video(src, frames, audio)
    report = anonymize_video(src, dst, lambda rgb, d, e: 255 - rgb, lambda rate: Negate(), lossless=True)
    assert report.frames == N and report.failed_frames == 0
    info_in, info_out = probe(src), probe(dst)
    assert info_out.fps == Fraction(FPS) == info_in.fps
    assert (info_out.width, info_out.height, info_out.audio_rate, info_out.audio_channels) == (W, H, RATE, 1)
    assert abs(info_out.duration_s - info_in.duration_s) <= 1 / FPS + 1e-3
    assert np.array_equal(read_frames(dst), 255 - read_frames(src))
    a_in, a_out = read_audio(src), read_audio(dst)
    assert a_out.size == a_in.size
    assert np.abs(a_out + a_in).max() < 1e-3  # the anonymizer's delay is removed: sound stays in sync


def test_failing_frames_are_black_and_default_codecs_work_without_audio(tmp_path: Path) -> None:
    frames = _frames()
    src, dst = tmp_path / 'in.mkv', tmp_path / 'out.mp4'
    make_video(src, frames, None)
    count = {'n': 0}

    def flaky(rgb: np.ndarray, depth: object, enc: str) -> np.ndarray:
        count['n'] += 1
        if count['n'] % 3 == 0:
            raise RuntimeError('detector crashed')
        return 255 - rgb

    report = anonymize_video(src, dst, flaky, lambda rate: Negate())
    assert (report.frames, report.failed_frames) == (N, N // 3)
    info = probe(dst)
    assert info.audio_rate is None and info.fps == Fraction(FPS) and info.frames == N
    out = read_frames(dst)
    dark = [i for i in range(N) if out[i].mean() < 20]
    assert dark == [2, 5, 8, 11]
    with pytest.raises(VideoError, match='exists already'):
        anonymize_video(src, dst, flaky, lambda rate: Negate())
