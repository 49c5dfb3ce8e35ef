"""Offline anonymization of rosbag2 bags: images (raw and compressed) through the face anonymizer, audio through the
streaming voice anonymizer, every other topic copied unchanged. No rclpy node (only its C serializer).

Reads MCAP or sqlite3 bags of any rosbag2 version (Humble to Kilted) with ``rosbags``, writes with
:class:`anon_ros.bags.BagWriter`. Header stamps and receive times (bag timestamps) are kept: a message is
deserialized, only its payload is replaced, and it is written with the timestamp it was read with.

Fail closed: a frame the anonymizer cannot process is written fully masked (black) or dropped
(:class:`FailureAction`); an audio chunk that fails becomes silence; a topic of a media type we cannot anonymize, or
an image encoding we cannot decode, stops the run with an error naming it (exclude the topic to go on).

Depth (16UC1/32FC1/mono16) of a configured pair is given to the face anonymizer with the image whose header stamp is
closest (within ``depth_slop_s``) and written with that image, its head regions (the pixels the anonymizer changed)
flat at the head's depth: a depth map of a face is 3D face geometry. A depth frame whose image failed, or that no
image used, is written blank (no return). Depth topics that are not paired, and compressedDepth, are copied
unchanged: pair them (or exclude them) when people may be in view.

Images go through a :class:`FrameStream` that may hold frames back: the default (:class:`LookaheadFrames`) detects
on keyframes in a worker thread, and a frame between keyframes also gets the heads found at the next one. MCAP
output is written from a thread of its own (:class:`anon_ros.bags.WriteBehind`).

The anonymizers come from factories, so the bag plumbing is tested with simple ones and the real ones
(:class:`anon_ros.core.face_pipeline.FaceAnonymizer`, :class:`anon_ros.core.voice.mcadams.McAdamsAnonymizer`) are
wired in by :func:`default_face_factory` / :func:`default_voice_factory`.
"""

from __future__ import annotations

import enum
import functools
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TextIO

import cv2
import numpy as np

from anon_ros.bags import BagError, BagWriter, StorageFormat, TopicType, WriteBehind, resolve_type
from anon_ros.conversions import audio_to_array, fill_audio, fill_image, image_to_array
from anon_ros.core.depth_mask import flatten_depth
from anon_ros.core.errors import AnonRosError, InputError

IMAGE = 'sensor_msgs/msg/Image'
COMPRESSED = 'sensor_msgs/msg/CompressedImage'
AUDIO = 'anon_ros_msgs/msg/AudioStamped'
#: Image encodings that are depth (or other non-visual) maps: copied unchanged, usable as depth for a paired camera.
DEPTH_ENCODINGS = frozenset({'16UC1', '32FC1', 'mono16'})
#: Media types anon_ros cannot anonymize: copying them would leak faces or voices, so the run stops instead.
UNSUPPORTED_MEDIA = frozenset({
    'audio_common_msgs/msg/AudioData', 'audio_common_msgs/msg/AudioDataStamped', 'audio_common_msgs/msg/AudioStamped',
    'foxglove_msgs/msg/CompressedVideo', 'theora_image_transport/msg/Packet',
    'ffmpeg_image_transport_msgs/msg/FFMPEGPacket', 'sensor_msgs/msg/PointCloud2_rgb_faces',
})


#: The action of an image topic that holds depth but is paired with no image: copied unchanged (face geometry and
#: all), so the command warns about it.
UNPAIRED_DEPTH = 'unpaired depth, copied'


class OfflineError(AnonRosError):
    """The bag cannot be anonymized as asked (unknown encoding, unsupported media type, bad configuration)."""


class FailureAction(enum.Enum):
    """What becomes of a frame the face anonymizer could not process."""

    MASK = 'mask'  # written fully black, same size and encoding
    DROP = 'drop'  # not written


class FrameAnonymizer(Protocol):
    """One camera stream's face anonymizer: RGB uint8 HxWx3 (+ optional depth) -> anonymized RGB of the same shape.

    Raises on failure (the caller masks or drops the frame); never returns raw pixels on error.
    """

    def __call__(self, rgb: np.ndarray, depth: np.ndarray | None, depth_encoding: str) -> np.ndarray: ...


#: A frame out of a :class:`FrameStream`: (tag, anonymized RGB or None if it failed, mask of the anonymized pixels or
#: None if the stream does not know it).
Frame = tuple[Any, 'np.ndarray | None', 'np.ndarray | None']


class FrameStream(Protocol):
    """One camera stream's face anonymizer that may hold frames back (look-ahead): frames pushed in order with a tag,
    :data:`Frame` results returned in the same order (``rgb=None`` pushes a frame that could not be read; it comes
    out failed). :meth:`flush` returns every frame still held."""

    def push(self, tag: Any, rgb: np.ndarray | None, depth: np.ndarray | None, depth_encoding: str) -> list[Frame]: ...

    def flush(self) -> list[Frame]: ...


class ImmediateFrames:
    """A :class:`FrameStream` over a :class:`FrameAnonymizer` that returns every frame at once."""

    def __init__(self, anonymizer: FrameAnonymizer) -> None:
        self.anonymizer = anonymizer

    def push(self, tag: Any, rgb: np.ndarray | None, depth: np.ndarray | None, depth_encoding: str) -> list[Frame]:
        if rgb is None:
            return [(tag, None, None)]
        try:
            out = self.anonymizer(rgb, depth, depth_encoding)
        except Exception:  # noqa: BLE001 - fail closed: the caller masks or drops the frame
            return [(tag, None, None)]
        if not isinstance(out, np.ndarray) or out.shape != rgb.shape or out.dtype != np.uint8:
            return [(tag, None, None)]  # never trust a malformed result to have hidden anything
        return [(tag, out, None)]

    def flush(self) -> list[Frame]:
        return []


def frame_stream(anonymizer: FrameAnonymizer | FrameStream) -> FrameStream:
    """``anonymizer`` as a :class:`FrameStream` (plain per-frame callables are wrapped in :class:`ImmediateFrames`)."""
    if hasattr(anonymizer, 'push') and hasattr(anonymizer, 'flush'):
        return anonymizer  # type: ignore[return-value]
    return ImmediateFrames(anonymizer)  # type: ignore[arg-type]


class VoiceStream(Protocol):
    """The subset of :class:`anon_ros.core.voice.base.StreamingVoiceAnonymizer` used here."""

    @property
    def latency_samples(self) -> int: ...

    def process(self, chunk: np.ndarray) -> np.ndarray: ...

    def flush(self) -> np.ndarray: ...

    def reset(self) -> None: ...


FaceFactory = Callable[[str], 'FrameAnonymizer | FrameStream']  # topic -> a fresh per-stream anonymizer
VoiceFactory = Callable[[int], VoiceStream]  # sample rate -> a fresh mono stream anonymizer


@dataclass(frozen=True)
class BagAnonymizeConfig:
    """What to do with which topic. Every Image/CompressedImage/AudioStamped topic is anonymized unless excluded."""

    exclude: frozenset[str] = frozenset()  # topics left out of the output entirely
    depth_pairs: Mapping[str, str] = field(default_factory=dict)  # image topic -> depth topic
    depth_slop_s: float = 0.05
    on_failure: FailureAction = FailureAction.MASK
    storage: StorageFormat | None = None  # None: the input's
    jpeg_quality: int = 90

    def __post_init__(self) -> None:
        if not 0.0 <= self.depth_slop_s <= 10.0:
            raise OfflineError(f'depth_slop_s must be in [0, 10] s, got {self.depth_slop_s}')
        if not 1 <= self.jpeg_quality <= 100:
            raise OfflineError(f'jpeg_quality must be in [1, 100], got {self.jpeg_quality}')
        if not isinstance(self.on_failure, FailureAction):
            raise OfflineError(f'on_failure must be a FailureAction, got {self.on_failure!r}')


@dataclass
class TopicReport:
    msgtype: str
    action: str  # 'faces' | 'voice' | 'depth' | 'copy' | UNPAIRED_DEPTH
    messages_in: int = 0
    messages_out: int = 0
    failed: int = 0  # frames/chunks that failed and were masked, dropped or silenced


@dataclass
class BagReport:
    """Per-topic counts, the bag duration and the wall time the run took."""

    topics: dict[str, TopicReport] = field(default_factory=dict)
    bag_duration_s: float = 0.0
    wall_s: float = 0.0

    @property
    def realtime_factor(self) -> float:
        """Bag seconds per wall second (> 1: faster than real time)."""
        return self.bag_duration_s / self.wall_s if self.wall_s > 0 else float('inf')


class Progress:
    """A dependency-free progress bar on stderr (a line per 10 % when stderr is not a terminal)."""

    def __init__(self, total: int, stream: TextIO | None = None, label: str = 'anonymizing',
                 unit: str = 'msgs') -> None:
        self.total = max(total, 1)
        self.stream = stream if stream is not None else sys.stderr
        self.label = label
        self.unit = unit
        self.done = 0
        self.t0 = time.monotonic()
        self._last = 0.0
        self._last_decile = -1
        self.tty = bool(getattr(self.stream, 'isatty', lambda: False)())

    def update(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        frac = min(1.0, self.done / self.total)
        if self.tty and now - self._last < 0.2 and self.done < self.total:
            return
        if not self.tty and int(frac * 10) == self._last_decile:
            return
        self._last, self._last_decile = now, int(frac * 10)
        elapsed = now - self.t0
        eta = elapsed / frac - elapsed if frac > 0 else 0.0
        bar = '#' * int(frac * 30)
        line = f'{self.label} [{bar:<30}] {frac * 100:5.1f}% {self.done}/{self.total} {self.unit}, {elapsed:.0f}s, ETA {eta:.0f}s'
        self.stream.write(('\r' + line) if self.tty else (line + '\n'))
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write('\n')
            self.stream.flush()


# ------------------------------------------------------------------------------------------------------ images


def _to_rgb(array: np.ndarray, encoding: str) -> np.ndarray:
    if encoding in ('rgb8', '8UC3'):
        return array
    if encoding == 'bgr8':
        return cv2.cvtColor(array, cv2.COLOR_BGR2RGB)
    if encoding == 'rgba8':
        return cv2.cvtColor(array, cv2.COLOR_RGBA2RGB)
    if encoding == 'bgra8':
        return cv2.cvtColor(array, cv2.COLOR_BGRA2RGB)
    if encoding in ('mono8', '8UC1'):
        return cv2.cvtColor(array, cv2.COLOR_GRAY2RGB)
    raise OfflineError(f'cannot anonymize image encoding {encoding!r}')


def _from_rgb(rgb: np.ndarray, encoding: str, original: np.ndarray) -> np.ndarray:
    if encoding in ('rgb8', '8UC3'):
        return rgb
    if encoding == 'bgr8':
        return cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    if encoding in ('rgba8', 'bgra8'):
        out = cv2.cvtColor(rgb, cv2.COLOR_RGB2RGBA if encoding == 'rgba8' else cv2.COLOR_RGB2BGRA)
        out[:, :, 3] = original[:, :, 3]
        return out
    if encoding in ('mono8', '8UC1'):
        return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    raise OfflineError(f'cannot anonymize image encoding {encoding!r}')


ANONYMIZABLE_ENCODINGS = ('rgb8', 'bgr8', 'rgba8', 'bgra8', 'mono8', '8UC1', '8UC3')


def _compressed_codec(fmt: str) -> str:
    """'jpeg' or 'png' from a CompressedImage ``format`` ('jpeg', 'png', 'rgb8; jpeg compressed bgr8', ...)."""
    f = fmt.lower()
    if 'compresseddepth' in f:
        return 'depth'
    if 'jpeg' in f or 'jpg' in f:
        return 'jpeg'
    if 'png' in f:
        return 'png'
    raise OfflineError(f'unknown CompressedImage format {fmt!r}; expected jpeg or png')


@dataclass
class _Depth:
    stamp_ns: int
    array: np.ndarray
    encoding: str
    conn: Any = None  # where the message goes once the heads in it are known
    timestamp: int = 0
    msg: Any = None
    raw: bytes = b''  # the serialized message as read
    used: bool = False  # given to the face anonymizer with an image
    written: bool = False


@dataclass
class _Pending:
    conn: Any
    timestamp: int
    msg: Any
    stamp_ns: int
    deadline: int  # bag time after which we stop waiting for its depth


def _stamp_ns(msg: Any) -> int:
    return int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)


@dataclass
class _Decoded:
    pending: _Pending
    original: np.ndarray | None = None  # the decoded raw image (its alpha channel is kept)
    codec: str = ''  # compressed images: 'jpeg' or 'png'
    rgb: np.ndarray | None = None  # what went into the anonymizer
    depth: _Depth | None = None


Written = tuple[Any, int, Any]  # (connection, receive timestamp, message) to write


class _ImageTopic:
    """Anonymizes one image topic's frames (raw or compressed), with the depth of a paired topic if configured.

    Frames go into the topic's :class:`FrameStream` in order and come back in order, possibly later (look-ahead).
    """

    def __init__(self, name: str, msgtype: str, frames: FrameStream, config: BagAnonymizeConfig,
                 report: TopicReport) -> None:
        self.name = name
        self.compressed = msgtype == COMPRESSED
        self.frames = frames
        self.config = config
        self.report = report
        self.depth: list[_Depth] = []  # recent depth frames of the paired topic, oldest first
        self.pending: list[_Pending] = []
        self.max_depth_seen = -1

    def add_depth(self, d: _Depth) -> list[Written]:
        """Keep ``d`` for the images near it; return the depth frames no image can use any more that were never
        used: they are written blank (nothing tells where the heads in them are)."""
        self.depth.append(d)
        self.max_depth_seen = max(self.max_depth_seen, d.stamp_ns)
        old, self.depth = self.depth[:-8], self.depth[-8:]
        return [self._depth_out(o, None) for o in old if not o.used and not o.written]

    def nearest_depth(self, stamp_ns: int) -> _Depth | None:
        slop = int(self.config.depth_slop_s * 1e9)
        best = min(self.depth, key=lambda d: abs(d.stamp_ns - stamp_ns), default=None)
        return best if best is not None and abs(best.stamp_ns - stamp_ns) <= slop else None

    def submit(self, p: _Pending) -> list[Written]:
        """Decode ``p`` into the frame stream; return the (pending, message) pairs done (fully masked on failure;
        failed frames are left out with FailureAction.DROP)."""
        depth = self.nearest_depth(_stamp_ns(p.msg))
        item = _Decoded(p, depth=depth)
        if depth is not None:
            depth.used = True
        try:
            item.rgb = self._decode(item)
        except OfflineError:
            raise
        except Exception:  # noqa: BLE001 - an unreadable frame keeps its place and comes out failed
            item.rgb = None
        done = self.frames.push(item, item.rgb, depth.array if depth else None, depth.encoding if depth else '32FC1')
        return self._encode_all(done)

    def finish(self) -> list[Written]:
        """The frames still held, then every depth frame not written yet (blank: no image tells its heads)."""
        out = self._encode_all(self.frames.flush())
        out += [self._depth_out(d, None) for d in self.depth if not d.written]
        return out

    def _encode_all(self, done: list[Frame]) -> list[Written]:
        out: list[Written] = []
        for item, rgb, mask in done:
            msg = self._encode(item, rgb)
            if msg is not None:
                out.append((item.pending.conn, item.pending.timestamp, msg))
            d = item.depth
            if d is not None and not d.written:
                # Heads = the anonymizer's mask, or the pixels it changed; a failed frame blanks its depth.
                if rgb is not None and mask is None and item.rgb is not None:
                    mask = np.any(rgb != item.rgb, axis=2)
                out.append(self._depth_out(d, mask if rgb is not None else None))
        return out

    def _depth_out(self, d: _Depth, heads: np.ndarray | None) -> Written:
        """``d``'s message with the face geometry removed: head regions flat at the head's depth; all of it
        invalid when ``heads`` is None. Without heads, its bytes as read."""
        d.written = True
        if heads is not None and not heads.any():
            return d.conn, d.timestamp, d.raw
        return d.conn, d.timestamp, functools.partial(_flattened, d.raw, d, heads)  # made in the writer thread

    def _decode(self, item: _Decoded) -> np.ndarray | None:
        msg = item.pending.msg
        if self.compressed:
            item.codec = _compressed_codec(msg.format)
            if item.codec == 'depth':
                return None
            bgr = cv2.imdecode(np.frombuffer(bytes(msg.data), np.uint8), cv2.IMREAD_COLOR)
            if bgr is None:
                raise InputError(f'{self.name}: {item.codec} data does not decode')
            return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        if msg.encoding not in ANONYMIZABLE_ENCODINGS:
            raise OfflineError(
                f'{self.name}: cannot anonymize image encoding {msg.encoding!r}; supported: '
                f'{", ".join(ANONYMIZABLE_ENCODINGS)} (depth {", ".join(sorted(DEPTH_ENCODINGS))} is copied). '
                f'Exclude the topic to go on without it.'
            )
        item.original = image_to_array(msg)
        return np.ascontiguousarray(_to_rgb(item.original, msg.encoding))

    def _encode(self, item: _Decoded, rgb: np.ndarray | None) -> Any | None:
        """The message with anonymized pixels, fully masked on failure, or None (dropped)."""
        msg = item.pending.msg
        if item.codec == 'depth':
            return msg  # compressedDepth is depth: copied like raw depth
        try:
            if rgb is None:
                raise InputError('the frame failed')
            if self.compressed:
                bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
                msg.data = _encode(bgr, item.codec, self.config.jpeg_quality)
            else:
                assert item.original is not None
                fill_image(msg, np.ascontiguousarray(_from_rgb(rgb, msg.encoding, item.original)), msg.encoding)
            return msg
        except Exception:  # noqa: BLE001 - fail closed: whatever went wrong, the raw frame is never written
            self.report.failed += 1
            if self.config.on_failure is FailureAction.DROP:
                return None
            if self.config.on_failure is FailureAction.MASK:
                return self._masked(msg)
            raise OfflineError(f'unhandled failure action {self.config.on_failure}') from None

    def _masked(self, msg: Any) -> Any:
        if self.compressed:
            h, w = _compressed_size(msg)
            codec = _compressed_codec(msg.format)
            msg.data = _encode(np.zeros((h, w, 3), np.uint8), 'png' if codec == 'png' else 'jpeg', 90)
            return msg
        msg.data = bytes(len(msg.data))  # zeros: black in every 8-bit encoding; keeps height/width/step/encoding
        return msg


def _size_hint(msg: Any) -> int:
    """Bytes a queued message will take (its payload), for the writer's back-pressure."""
    if isinstance(msg, (bytes, bytearray, memoryview)):
        return len(msg)
    if isinstance(msg, functools.partial) and msg.args and isinstance(msg.args[0], (bytes, bytearray)):
        return len(msg.args[0])
    data = getattr(msg, 'data', b'')
    return len(data) if hasattr(data, '__len__') else 0


def _flattened(raw: bytes, d: _Depth, heads: np.ndarray | None) -> bytes | bytearray:
    """The serialized depth Image ``raw`` with its head regions flat (everything invalid when ``heads`` is None).

    ``data`` is the last field of a CDR-encoded Image, so the pixels end the buffer: they are rewritten in a copy of
    it (no re-serialization of a 3-4 MB frame). Row padding or anything unexpected: the message is serialized anew.
    """
    arr = d.array
    n = arr.nbytes
    if arr.flags.c_contiguous and len(raw) >= n and np.array_equal(
        np.frombuffer(raw, np.uint8, n, len(raw) - n), arr.reshape(-1).view(np.uint8)
    ):
        out = bytearray(raw)
        _remove_geometry(arr, heads, np.frombuffer(out, arr.dtype, arr.size, len(raw) - n).reshape(arr.shape))
        return out
    from rclpy.serialization import serialize_message

    flat = arr.copy()
    _remove_geometry(arr, heads, flat)
    fill_image(d.msg, np.ascontiguousarray(flat), d.encoding)
    return serialize_message(d.msg)


def _remove_geometry(depth: np.ndarray, heads: np.ndarray | None, out: np.ndarray) -> None:
    """Into ``out`` (a copy of ``depth``): heads flattened, or everything invalid when ``heads`` is None."""
    if heads is None:
        out[...] = np.nan if depth.dtype.kind == 'f' else 0
    else:
        flatten_depth(depth, heads, out=out)


def _encode(bgr: np.ndarray, codec: str, quality: int) -> bytes:
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if codec == 'jpeg' else []
    ok, buf = cv2.imencode('.jpg' if codec == 'jpeg' else '.png', bgr, params)
    if not ok:
        raise InputError(f'cannot encode {codec}')
    return buf.tobytes()


def _compressed_size(msg: Any) -> tuple[int, int]:
    img = cv2.imdecode(np.frombuffer(bytes(msg.data), np.uint8), cv2.IMREAD_REDUCED_GRAYSCALE_8)
    if img is None:
        return 480, 640  # undecodable: any black frame will do, it carries nothing
    return img.shape[0] * 8, img.shape[1] * 8


# ------------------------------------------------------------------------------------------------------- audio


class _AudioTopic:
    """Voice-anonymizes one AudioStamped topic, output aligned with the input (the anonymizer's delay removed).

    Each output chunk has the stamp, sample_index, length and format of its input chunk. Per channel one stream.
    """

    def __init__(self, name: str, factory: VoiceFactory, report: TopicReport) -> None:
        self.name = name
        self.factory = factory
        self.report = report
        self.streams: list[VoiceStream] = []
        self.rate = 0
        self.skip = 0  # output samples still to discard (the anonymizer's latency)
        self.out: list[np.ndarray] = []  # per channel, anonymized samples not yet given to a chunk
        self.waiting: list[tuple[Any, int, Any, int]] = []  # (conn, timestamp, msg, frames) not yet filled
        self.next_index: int | None = None

    def _start(self, rate: int, channels: int) -> None:
        self.rate = rate
        self.streams = [self.factory(rate) for _ in range(channels)]
        self.skip = self.streams[0].latency_samples
        self.out = [np.zeros(0, np.float32) for _ in range(channels)]

    def push(self, conn: Any, timestamp: int, msg: Any) -> list[tuple[Any, int, Any]]:
        samples = audio_to_array(msg)  # InputError on malformed chunks
        channels = samples.shape[1]
        gap = self.next_index is not None and msg.sample_index != self.next_index
        if not self.streams or msg.sample_rate != self.rate or channels != len(self.streams) or gap:
            done = self.finish()
            self._start(int(msg.sample_rate), channels)
        else:
            done = []
        self.next_index = msg.sample_index + samples.shape[0]
        self._feed(samples)
        self.waiting.append((conn, timestamp, msg, samples.shape[0]))
        return done + self._emit()

    def _feed(self, samples: np.ndarray) -> None:
        for c, stream in enumerate(self.streams):
            try:
                y = np.asarray(stream.process(np.ascontiguousarray(samples[:, c], dtype=np.float32)), np.float32)
                if y.shape != (samples.shape[0],):
                    raise InputError(f'voice anonymizer returned {y.shape} samples for {samples.shape[0]}')
            except Exception:  # noqa: BLE001 - fail closed: silence, and the stream starts over
                self.report.failed += 1
                stream.reset()
                y = np.zeros(samples.shape[0], np.float32)
            self.out[c] = np.concatenate((self.out[c], y))
        if self.skip:
            k = min(self.skip, self.out[0].size)
            self.out = [o[k:] for o in self.out]
            self.skip -= k

    def _emit(self) -> list[tuple[Any, int, Any]]:
        done = []
        while self.waiting and self.out[0].size >= self.waiting[0][3]:
            conn, timestamp, msg, n = self.waiting.pop(0)
            chunk = np.stack([o[:n] for o in self.out], axis=1)
            self.out = [o[n:] for o in self.out]
            fill_audio(msg, chunk, msg.sample_rate, msg.sample_format)
            done.append((conn, timestamp, msg))
        return done

    def finish(self) -> list[tuple[Any, int, Any]]:
        """Flush the anonymizers and return the chunks still waiting for output."""
        if not self.streams:
            return []
        tails = []
        for stream in self.streams:
            try:
                tails.append(np.asarray(stream.flush(), np.float32))
            except Exception:  # noqa: BLE001
                self.report.failed += 1
                tails.append(np.zeros(stream.latency_samples, np.float32))
        n = min(t.size for t in tails)
        self.out = [np.concatenate((o, t[:n])) for o, t in zip(self.out, tails, strict=True)]
        if self.skip:
            k = min(self.skip, self.out[0].size)
            self.out = [o[k:] for o in self.out]
            self.skip -= k
        # Whatever is still missing (a stream shorter than its latency) is silence, never the input.
        missing = sum(w[3] for w in self.waiting) - self.out[0].size
        if missing > 0:
            self.out = [np.concatenate((o, np.zeros(missing, np.float32))) for o in self.out]
        done = self._emit()
        self.streams = []
        return done


# -------------------------------------------------------------------------------------------------------- bags


def _output_type(conn: Any) -> TopicType:
    """Definition and hash for the output: the input's when it has both, else Kilted's."""
    msgdef = conn.msgdef.data if conn.msgdef is not None else ''
    fmt = {1: 'ros2msg', 2: 'ros2idl'}.get(getattr(conn.msgdef.format, 'value', 0), '') if msgdef else ''
    if msgdef and conn.digest:
        return TopicType(conn.msgtype, msgdef, conn.digest, fmt)
    try:
        return resolve_type(conn.msgtype)
    except BagError:
        return TopicType(conn.msgtype, msgdef, conn.digest or '', fmt)


def _message_class(msgtype: str) -> type:
    import importlib

    pkg, kind, name = msgtype.split('/')
    return getattr(importlib.import_module(f'{pkg}.{kind}'), name)


def anonymize_bag(
    src: Path | str,
    dst: Path | str,
    face_factory: FaceFactory,
    voice_factory: VoiceFactory,
    config: BagAnonymizeConfig | None = None,
    progress: Progress | bool = False,
) -> BagReport:
    """Write an anonymized copy of bag ``src`` to the new bag ``dst``; see the module docstring."""
    from rclpy.serialization import deserialize_message, serialize_message
    from rosbags.rosbag2 import Reader

    config = config or BagAnonymizeConfig()
    src, dst = Path(src), Path(dst)
    report = BagReport()
    t0 = time.monotonic()
    try:
        reader = Reader(src)
        reader.open()
    except Exception as err:
        raise OfflineError(f'cannot read bag {src}: {err} (a bag from a killed recorder: anon-ros bag-reindex)') from err
    try:
        conns = [c for c in reader.connections if c.topic not in config.exclude]
        unknown_pairs = {t for pair in config.depth_pairs.items() for t in pair} - {c.topic for c in conns}
        if unknown_pairs:
            raise OfflineError(f'depth pairs name topics the bag does not have: {sorted(unknown_pairs)}')
        blocked = sorted(f'{c.topic} ({c.msgtype})' for c in conns if c.msgtype in UNSUPPORTED_MEDIA)
        if blocked:
            raise OfflineError(
                f'cannot anonymize {", ".join(blocked)}: anon_ros has no anonymizer for these types, and copying '
                'them would leak raw media. Exclude them to go on without them.'
            )
        storage = config.storage or _storage_of(src)
        writer = BagWriter(dst, storage, custom_data={'anon_ros.anonymized_from': src.name}).open()
        ids: dict[int, int] = {}
        images: dict[str, _ImageTopic] = {}
        audio: dict[str, _AudioTopic] = {}
        depth_of = {d: i for i, d in config.depth_pairs.items()}
        topic_ids: dict[str, int] = {}
        for c in conns:
            if c.topic in topic_ids:  # a second connection of one topic (another file or QoS): same output topic
                if report.topics[c.topic].msgtype != c.msgtype:
                    raise OfflineError(f'{c.topic} holds two message types: {report.topics[c.topic].msgtype}, {c.msgtype}')
                ids[c.id] = topic_ids[c.topic]
                continue
            qos = getattr(c.ext, 'offered_qos_profiles', [])
            ids[c.id] = topic_ids[c.topic] = writer.add_topic(c.topic, _output_type(c), qos)
            if c.msgtype in (IMAGE, COMPRESSED):
                action = 'faces' if c.topic not in depth_of else 'depth'
            elif c.msgtype == AUDIO:
                action = 'voice'
            else:
                action = 'copy'
            report.topics[c.topic] = TopicReport(c.msgtype, action)
            if action == 'faces':
                images[c.topic] = _ImageTopic(c.topic, c.msgtype, frame_stream(face_factory(c.topic)), config,
                                                report.topics[c.topic])
            elif action == 'voice':
                audio[c.topic] = _AudioTopic(c.topic, voice_factory, report.topics[c.topic])
        bar = progress if isinstance(progress, Progress) else (Progress(reader.message_count) if progress else None)
        classes: dict[str, type] = {}
        start, end = None, None

        # MCAP serialization and disk writes overlap reading and anonymizing (an sqlite3 bag is written from this
        # thread).
        behind = WriteBehind(writer) if storage is StorageFormat.MCAP else None

        def write(conn: Any, timestamp: int, msg: Any) -> None:
            """``msg``: a message, its bytes, or a function making them; serialized in the writer thread."""
            if isinstance(msg, (bytes, bytearray, memoryview)) or callable(msg):
                data = msg
            else:
                data = functools.partial(serialize_message, msg)
            if behind is not None:
                behind.write(ids[conn.id], timestamp, data, nbytes=_size_hint(msg))
            else:
                writer.write(ids[conn.id], timestamp, data() if callable(data) else data)
            report.topics[conn.topic].messages_out += 1

        def copy(conn: Any, timestamp: int, raw: Any) -> None:
            write(conn, timestamp, raw)

        def process_image(p: _Pending) -> None:
            for c2, ts2, m2 in images[p.conn.topic].submit(p):
                write(c2, ts2, m2)

        def release(now: int | None) -> None:
            for topic in images.values():
                keep = []
                for p in topic.pending:
                    if now is None or p.deadline <= now or topic.max_depth_seen >= p.stamp_ns:
                        process_image(p)
                    else:
                        keep.append(p)
                topic.pending = keep

        try:
            # rosbags reads every topic when given no connection: an all-excluded bag must read nothing.
            for conn, timestamp, raw in (reader.messages(connections=conns) if conns else ()):
                if conn.topic in config.exclude:
                    continue
                start = timestamp if start is None else min(start, timestamp)
                end = timestamp if end is None else max(end, timestamp)
                rep = report.topics[conn.topic]
                rep.messages_in += 1
                if rep.action == 'copy':
                    copy(conn, timestamp, raw)
                else:
                    cls = classes.get(conn.msgtype) or classes.setdefault(conn.msgtype, _message_class(conn.msgtype))
                    raw_bytes = bytes(raw)
                    msg: Any = deserialize_message(raw_bytes, cls)
                    if rep.action == 'depth':
                        _check_depth(conn.topic, msg)
                        if conn.msgtype == IMAGE and msg.encoding in DEPTH_ENCODINGS:
                            # Written with the image it pairs with, its head regions flattened.
                            for c2, ts2, m2 in images[depth_of[conn.topic]].add_depth(
                                _Depth(_stamp_ns(msg), image_to_array(msg), msg.encoding, conn, timestamp, msg, raw_bytes)
                            ):
                                write(c2, ts2, m2)
                        else:
                            copy(conn, timestamp, raw)  # compressedDepth: cannot be edited, see the docstring
                    elif rep.action in ('faces', UNPAIRED_DEPTH):
                        if conn.msgtype == IMAGE and msg.encoding in DEPTH_ENCODINGS:
                            rep.action = UNPAIRED_DEPTH  # no faces to find in it, and no image to say where
                            copy(conn, timestamp, raw)
                        elif conn.topic in config.depth_pairs:
                            slop = int(config.depth_slop_s * 1e9)
                            images[conn.topic].pending.append(
                                _Pending(conn, timestamp, msg, _stamp_ns(msg), timestamp + 2 * slop)
                            )
                        else:
                            process_image(_Pending(conn, timestamp, msg, 0, 0))
                    else:
                        for c2, ts2, m2 in audio[conn.topic].push(conn, timestamp, msg):
                            write(c2, ts2, m2)
                release(timestamp)
                if bar:
                    bar.update()
            release(None)
            for image_topic in images.values():
                for c2, ts2, m2 in image_topic.finish():
                    write(c2, ts2, m2)
            for topic in audio.values():
                for c2, ts2, m2 in topic.finish():
                    write(c2, ts2, m2)
        finally:
            try:
                if behind is not None:
                    behind.close()
            finally:
                writer.close()
            if bar:
                bar.close()
        report.bag_duration_s = ((end or 0) - (start or 0)) / 1e9
    finally:
        reader.close()
    report.wall_s = time.monotonic() - t0
    return report


def _check_depth(topic: str, msg: Any) -> None:
    enc = getattr(msg, 'encoding', None)
    if enc is not None and enc not in DEPTH_ENCODINGS:
        raise OfflineError(f'{topic} is configured as depth but has encoding {enc!r}; expected one of '
                           f'{sorted(DEPTH_ENCODINGS)}')


def _storage_of(src: Path) -> StorageFormat:
    files = list(src.glob('*')) if src.is_dir() else [src]
    return StorageFormat.SQLITE3 if any(p.suffix == '.db3' for p in files) else StorageFormat.MCAP


# ---------------------------------------------------------------------------------------- the real anonymizers


class LookaheadFrames:
    """A :class:`FrameStream` over :class:`anon_ros.core.lookahead.LookaheadFaceAnonymizer`: every frame sees the
    detections before and after it, detection runs beside decoding and writing. :meth:`flush` ends the stream."""

    def __init__(self, anonymizer: Any) -> None:
        self.anonymizer = anonymizer

    def push(self, tag: Any, rgb: np.ndarray | None, depth: np.ndarray | None, depth_encoding: str) -> list[Frame]:
        return [_frame(t, r) for t, r in self.anonymizer.push(tag, rgb, depth, depth_encoding)]

    def flush(self) -> list[Frame]:
        done = [_frame(t, r) for t, r in self.anonymizer.flush()]
        self.anonymizer.close()
        return done


def _frame(tag: Any, result: Any) -> Frame:
    return (tag, None, None) if result.failed else (tag, result.image, result.mask)


def default_face_factory(threads: int = 1, detect_every: int = 3, face_every: int = 2) -> FaceFactory:
    """Per-topic look-ahead face anonymizer (:class:`LookaheadFrames`; models loaded once per topic).

    ``threads``: onnxruntime threads of the detectors, which run in their own thread beside the decoding and masking
    in the caller's thread and the serializing and writing in the writer's (1 measured best on 2 cores).
    ``detect_every``: keyframe spacing. ``face_every``: the backup face detector on every n-th keyframe (a frame
    between keyframes sees the faces found on both sides; on the walking stream, 2 left no head pixel raw over 240
    frames, as 1 did, for a quarter less detection time).
    """
    from anon_ros.core.face_pipeline import FaceAnonymizerConfig
    from anon_ros.core.lookahead import LookaheadFaceAnonymizer

    def make(topic: str) -> FrameStream:
        _ = topic
        config = FaceAnonymizerConfig(threads=threads, detect_every=detect_every)
        return LookaheadFrames(LookaheadFaceAnonymizer(config, face_every=face_every))

    return make


def default_voice_factory(seed: int | None = None) -> VoiceFactory:
    """A :class:`anon_ros.core.voice.mcadams.McAdamsAnonymizer` per stream, its strength drawn per run."""
    from anon_ros.core.voice.mcadams import McAdamsAnonymizer, McAdamsConfig

    rng = np.random.default_rng(seed)

    def make(sample_rate: int) -> VoiceStream:
        return McAdamsAnonymizer(McAdamsConfig(sample_rate=sample_rate), rng=rng)

    return make


def parse_pairs(items: Sequence[str]) -> dict[str, str]:
    """``['/cam/image=/cam/depth', ...]`` -> {image: depth}; OfflineError naming a malformed item."""
    pairs: dict[str, str] = {}
    for item in items:
        image, sep, depth = item.partition('=')
        if not sep or not image or not depth:
            raise OfflineError(f'depth pair {item!r} must look like IMAGE_TOPIC=DEPTH_TOPIC')
        pairs[image] = depth
    return pairs
