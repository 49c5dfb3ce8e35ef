"""The embedded demo's observer: checks the anonymized streams against the synthetic ground truth as they run.

``DemoMonitor`` subscribes to the raw and anonymized topics of config/demo.graph.yaml, pairs each anonymized frame
with its raw frame, its ground-truth head mask and its anonymization mask by exact stamp, and keeps:
head-pixel coverage (a ground-truth head pixel outside the anonymization mask is a raw head pixel), latencies from
capture stamp to arrival, the frames for a side-by-side preview, and the anonymized audio for its soundtrack.
``write_preview`` turns those into an MP4 (original left, anonymized right, anonymized speech) with ffmpeg.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import scipy.io.wavfile
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from anon_ros.conversions import audio_to_array, image_to_array
from anon_ros.core.errors import AnonRosError
from anon_ros.core.metrics import CoverageTally, head_coverage, percentiles
from anon_ros.core.sync import MessageSource, TimeSynchronizer, header_stamp_ns
from anon_ros_msgs.msg import AudioStamped

NS = 1_000_000_000
PREVIEW_WIDTH = 640
"""Width of each half of the preview video."""
# Reliable with a deep queue: the monitor must see every frame the anonymizer publishes to count it.
MONITOR_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100, reliability=ReliabilityPolicy.RELIABLE)


@dataclass
class DemoTopics:
    """Fully qualified names of the demo graph's topics (config/demo.graph.yaml)."""

    raw_image: str = 'camera/image_raw'
    head_truth: str = 'camera/ground_truth/head_mask'
    anonymized_image: str = 'camera/image_anonymized'
    anonymization_mask: str = 'camera/anonymization_mask'
    raw_audio: str = 'mic/audio_raw'
    anonymized_audio: str = 'mic/audio_anonymized'


@dataclass
class DemoRecord:
    """What the monitor saw."""

    raw_frames: int = 0
    anonymized_frames: int = 0
    coverage: CoverageTally = field(default_factory=CoverageTally)
    image_latency_ms: list[float] = field(default_factory=list)
    audio_latency_ms: list[float] = field(default_factory=list)
    raw_audio_samples: int = 0
    preview: list[tuple[int, np.ndarray]] = field(default_factory=list)
    audio: list[tuple[int, np.ndarray]] = field(default_factory=list)
    sample_rate: int = 0


class DemoMonitor(Node):
    """Observer node of the demo (see the module docstring)."""

    def __init__(self, topics: DemoTopics | None = None, **kwargs: Any) -> None:
        super().__init__('demo_monitor', **kwargs)
        self.topics = topics or DemoTopics()
        self.record = DemoRecord()
        self._lock = threading.Lock()
        inputs = [MessageSource() for _ in range(4)]
        self._sync = TimeSynchronizer(inputs, 60)
        self._sync.registerCallback(self._on_frame)
        t = self.topics
        for source, topic in zip(inputs, (t.anonymized_image, t.anonymization_mask, t.raw_image, t.head_truth), strict=True):
            self.create_subscription(Image, topic, source.add, MONITOR_QOS)
        self.create_subscription(Image, t.raw_image, self._count_raw, MONITOR_QOS)
        self.create_subscription(Image, t.anonymized_image, self._on_anonymized_arrival, MONITOR_QOS)
        self.create_subscription(AudioStamped, t.raw_audio, self._count_raw_audio, MONITOR_QOS)
        self.create_subscription(AudioStamped, t.anonymized_audio, self._on_audio, MONITOR_QOS)

    def _now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    def _count_raw(self, msg: Image) -> None:
        with self._lock:
            self.record.raw_frames += 1

    def _on_anonymized_arrival(self, msg: Image) -> None:
        latency = (self._now_ns() - header_stamp_ns(msg)) / 1e6
        with self._lock:
            self.record.anonymized_frames += 1
            self.record.image_latency_ms.append(latency)

    def _count_raw_audio(self, msg: AudioStamped) -> None:
        with self._lock:
            self.record.raw_audio_samples += len(msg.data) // (4 * max(1, msg.channels))

    def _on_audio(self, msg: AudioStamped) -> None:
        stamp = header_stamp_ns(msg)
        latency = (self._now_ns() - stamp) / 1e6
        samples = audio_to_array(msg)[:, 0].copy()
        with self._lock:
            self.record.audio_latency_ms.append(latency + len(samples) / msg.sample_rate * 1e3)
            self.record.audio.append((stamp, samples))
            self.record.sample_rate = int(msg.sample_rate)

    def _on_frame(self, anonymized: Image, mask: Image, raw: Image, truth: Image) -> None:
        stamp = header_stamp_ns(raw)
        coverage = head_coverage(image_to_array(truth) > 0, image_to_array(mask) > 0)
        pair = side_by_side(image_to_array(raw), image_to_array(anonymized))
        with self._lock:
            self.record.coverage.add(coverage, stamp)
            self.record.preview.append((stamp, pair))

    def progress(self) -> str:
        with self._lock:
            r = self.record
            return (f'{r.raw_frames} frames in, {r.anonymized_frames} anonymized, head pixels covered '
                    f'{r.coverage.fraction:.2%} in {r.coverage.frames} checked frames, '
                    f'{len(r.coverage.frames_with_raw_head_pixels)} with raw head pixels, '
                    f'{sum(len(a) for _, a in r.audio) / max(1, r.sample_rate):.1f} s of anonymized audio')

    def summary(self, duration_s: float) -> dict[str, Any]:
        with self._lock:
            r = self.record
            return {
                'duration_s': duration_s,
                'frames': {
                    'published_raw': r.raw_frames,
                    'anonymized': r.anonymized_frames,
                    'checked_against_ground_truth': r.coverage.frames,
                    'anonymized_fps': r.anonymized_frames / duration_s if duration_s else float('nan'),
                },
                'heads': {
                    'ground_truth_head_pixels': r.coverage.head_pixels,
                    'covered_fraction': r.coverage.fraction,
                    'frames_with_raw_head_pixels': len(r.coverage.frames_with_raw_head_pixels),
                    'raw_head_pixels_in_those_frames': r.coverage.raw_pixels_per_frame,
                },
                'latency_ms': {
                    'image_capture_to_anonymized': percentiles(r.image_latency_ms),
                    'audio_capture_to_anonymized': percentiles(r.audio_latency_ms),
                },
                'audio': {
                    'raw_s': r.raw_audio_samples / r.sample_rate if r.sample_rate else 0.0,
                    'anonymized_s': sum(len(a) for _, a in r.audio) / r.sample_rate if r.sample_rate else 0.0,
                },
            }


def side_by_side(raw: np.ndarray, anonymized: np.ndarray, width: int = PREVIEW_WIDTH) -> np.ndarray:
    """Original left, anonymized right, each scaled to ``width`` (even sizes, as H.264 wants)."""
    h, w = raw.shape[:2]
    height = max(2, int(round(h * width / w / 2)) * 2)
    halves = [cv2.resize(np.ascontiguousarray(img[:, :, :3]), (width, height), interpolation=cv2.INTER_AREA)
              for img in (raw, anonymized)]
    return np.hstack(halves)


def write_preview(record: DemoRecord, fps: float, out: Path) -> Path:
    """Render the preview MP4 (H.264 + AAC) with ffmpeg; frames are held until the next checked frame."""
    if not record.preview:
        msg = 'no anonymized frame reached the monitor: nothing to preview'
        raise AnonRosError(msg)
    ffmpeg = shutil.which('ffmpeg')
    if ffmpeg is None:
        msg = 'ffmpeg not found (Debian: apt-get install ffmpeg); the preview video needs it'
        raise AnonRosError(msg)
    frames = sorted(record.preview, key=lambda p: p[0])
    start, end = frames[0][0], frames[-1][0]
    n_slots = int((end - start) * fps / NS) + 1
    height, width = frames[0][1].shape[:2]
    with tempfile.TemporaryDirectory() as tmp:
        args = [ffmpeg, '-y', '-loglevel', 'error', '-f', 'rawvideo', '-pix_fmt', 'rgb24', '-s', f'{width}x{height}',
                '-r', f'{fps:g}', '-i', '-']
        wav = Path(tmp) / 'audio.wav'
        if record.audio and record.sample_rate:
            scipy.io.wavfile.write(wav, record.sample_rate, soundtrack(record, start, n_slots / fps))
            args += ['-i', str(wav), '-c:a', 'aac', '-b:a', '96k']
        args += ['-c:v', 'libx264', '-preset', 'veryfast', '-pix_fmt', 'yuv420p', '-shortest', str(out)]
        proc = subprocess.Popen(args, stdin=subprocess.PIPE)  # noqa: S603 - ffmpeg with our own arguments
        assert proc.stdin is not None
        index = 0
        for slot in range(n_slots):
            t = start + slot * NS / fps
            while index + 1 < len(frames) and frames[index + 1][0] <= t:
                index += 1
            proc.stdin.write(frames[index][1].tobytes())
        proc.stdin.close()
        if proc.wait() != 0:
            msg = f'ffmpeg failed to write {out}'
            raise AnonRosError(msg)
    return out


def soundtrack(record: DemoRecord, start_ns: int, duration_s: float) -> np.ndarray:
    """The anonymized audio laid out on the video's time line by capture stamps (silence where none came)."""
    rate = record.sample_rate
    track = np.zeros(int(duration_s * rate) + 1, np.float32)
    for stamp, samples in record.audio:
        offset = round((stamp - start_ns) * rate / NS)
        lo, hi = max(0, offset), min(len(track), offset + len(samples))
        if hi > lo:
            track[lo:hi] = samples[lo - offset:hi - offset]
    return track


def write_summary(summary: dict[str, Any], out: Path) -> Path:
    out.write_text(json.dumps(summary, indent=2, default=float) + '\n', encoding='utf-8')
    return out
