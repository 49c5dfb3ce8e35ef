"""anon-ros anonymize-bag: plumbing with injected anonymizers (both storages, Humble input), fail-closed behaviour, and
the real face/voice anonymizers on real photos. Bags are read back with independent readers (rosbags, mcap)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory
from rclpy.serialization import deserialize_message, serialize_message
from rosbags.rosbag2 import Reader
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import String

from anon_ros.bags import BagWriter, StorageFormat, resolve_type
from anon_ros.conversions import audio_to_array, fill_audio, fill_image, image_to_array
from anon_ros.core.sample_images import load_sample_image
from anon_ros.offline import (
    BagAnonymizeConfig,
    FailureAction,
    OfflineError,
    anonymize_bag,
)
from anon_ros_msgs.msg import AudioStamped

T0 = 1_700_000_000 * 10**9
CLASSES = {'sensor_msgs/msg/Image': Image, 'sensor_msgs/msg/CompressedImage': CompressedImage,
           'anon_ros_msgs/msg/AudioStamped': AudioStamped, 'std_msgs/msg/String': String}


def _stamp(msg, ns: int) -> None:
    msg.header.stamp.sec, msg.header.stamp.nanosec = ns // 10**9, ns % 10**9


def _voice(n: int, rate: int = 16000) -> np.ndarray:
    t = np.arange(n) / rate
    f0 = 120 + 10 * np.sin(2 * np.pi * 3 * t)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    return (0.1 * sum(np.sin(k * phase) / k for k in range(1, 20))).astype(np.float32)


def make_input_bag(path: Path, storage: StorageFormat = StorageFormat.MCAP, frames: int = 4,
                   photo: str = 'astronaut') -> dict[str, list[tuple[int, bytes]]]:
    """A bag with a camera (raw + depth + compressed), audio and a non-media topic; returns what was written."""
    rgb = cv2.resize(np.asarray(load_sample_image(photo)), (256, 256))
    written: dict[str, list[tuple[int, bytes]]] = {}
    voice = _voice(320 * 25)
    with BagWriter(path, storage) as w:
        ids = {name: w.add_topic(name, resolve_type(t)) for name, t in [
            ('/cam/image_raw', 'sensor_msgs/msg/Image'), ('/cam/depth', 'sensor_msgs/msg/Image'),
            ('/cam/compressed', 'sensor_msgs/msg/CompressedImage'), ('/audio', 'anon_ros_msgs/msg/AudioStamped'),
            ('/chatter', 'std_msgs/msg/String')]}

        def put(topic: str, recv: int, msg: object) -> None:
            raw = serialize_message(msg)
            w.write(ids[topic], recv, raw)
            written.setdefault(topic, []).append((recv, raw))

        for i in range(frames):
            stamp = T0 + i * 100_000_000
            img = fill_image(Image(), rgb, 'rgb8')
            _stamp(img, stamp)
            put('/cam/image_raw', stamp + 5_000_000, img)
            depth = fill_image(Image(), np.full(rgb.shape[:2], 2.0, np.float32), '32FC1')
            _stamp(depth, stamp)
            put('/cam/depth', stamp + 6_000_000, depth)
            comp = CompressedImage(format='jpeg')
            comp.data = cv2.imencode('.jpg', cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))[1].tobytes()
            _stamp(comp, stamp)
            put('/cam/compressed', stamp + 7_000_000, comp)
            put('/chatter', stamp + 8_000_000, String(data=f'hello {i}'))
        for k in range(25):
            chunk = fill_audio(AudioStamped(), voice[320 * k:320 * (k + 1)], 16000)
            _stamp(chunk, T0 + k * 20_000_000)
            chunk.sample_index = 320 * k
            put('/audio', T0 + k * 20_000_000 + 1_000_000, chunk)
    return written


def read_bag(path: Path) -> dict[str, list[tuple[int, bytes]]]:
    out: dict[str, list[tuple[int, bytes]]] = {}
    with Reader(path) as reader:
        for conn, ts, raw in reader.messages():
            out.setdefault(conn.topic, []).append((ts, bytes(raw)))
    return out


def decode(topic: str, raw: bytes) -> object:
    cls = {'/cam/image_raw': Image, '/cam/depth': Image, '/cam/compressed': CompressedImage,
           '/audio': AudioStamped, '/chatter': String}[topic]
    return deserialize_message(raw, cls)


def invert(rgb: np.ndarray, depth: np.ndarray | None, depth_encoding: str) -> np.ndarray:
    return 255 - rgb


class Negate:
    """A voice 'anonymizer' with a 7-sample delay: output = -input, delayed."""

    latency_samples = 7

    def __init__(self) -> None:
        self.buf = np.zeros(7, np.float32)

    def process(self, chunk: np.ndarray) -> np.ndarray:
        x = np.concatenate((self.buf, -chunk))
        self.buf = x[chunk.size:]
        return x[:chunk.size]

    def flush(self) -> np.ndarray:
        out, self.buf = self.buf, np.zeros(7, np.float32)
        return out

    def reset(self) -> None:
        self.buf = np.zeros(7, np.float32)


class HoldBack:
    """A look-ahead frame stream stand-in: inverts frames but returns each one only after ``delay`` more arrived."""

    def __init__(self, run, delay: int = 3) -> None:
        self.run, self.delay, self.held = run, delay, []

    def push(self, tag, rgb, depth, enc):
        try:
            out = None if rgb is None else self.run(rgb, depth, enc)
        except RuntimeError:  # a frame stream fails closed itself: None in the frame's place
            out = None
        self.held.append((tag, out, None))
        out, self.held = self.held[:-self.delay], self.held[-self.delay:]
        return out

    def flush(self):
        out, self.held = self.held, []
        return out


@pytest.mark.parametrize('held_back', [False, True], ids=['immediate', 'held_back'])
@pytest.mark.parametrize('storage', list(StorageFormat))
def test_plumbing_preserves_everything_but_faces_and_voices(tmp_path: Path, storage: StorageFormat,
                                                            held_back: bool) -> None:
    src, dst = tmp_path / 'in', tmp_path / 'out'
    written = make_input_bag(src, storage)
    seen_depth: list[bool] = []

    def face(topic: str):
        def run(rgb: np.ndarray, depth: np.ndarray | None, enc: str) -> np.ndarray:
            if topic == '/cam/image_raw':
                seen_depth.append(depth is not None and enc == '32FC1')
            return invert(rgb, depth, enc)
        return HoldBack(run) if held_back else run

    report = anonymize_bag(src, dst, face, lambda rate: Negate(),
                           BagAnonymizeConfig(depth_pairs={'/cam/image_raw': '/cam/depth'}))
    assert seen_depth == [True] * 4
    got = read_bag(dst)
    assert set(got) == set(written)
    assert (dst / f'out_0{storage.suffix}').is_file()
    for topic, msgs in written.items():
        assert [ts for ts, _ in got[topic]] == [ts for ts, _ in msgs], f'{topic}: receive times changed'
        assert [decode(topic, r).header.stamp for _, r in got[topic] if topic != '/chatter'] == \
               [decode(topic, r).header.stamp for _, r in msgs if topic != '/chatter'], f'{topic}: stamps changed'
    assert got['/chatter'] == written['/chatter'], '/chatter must be copied byte for byte'
    # Paired depth is rewritten with its head regions flat (the stub changes every pixel: all of it is 'head'; the
    # input depth is flat already, so the values stay).
    for (_, a), (_, b) in zip(written['/cam/depth'], got['/cam/depth'], strict=True):
        da, db = decode('/cam/depth', a), decode('/cam/depth', b)
        assert (da.header, da.encoding, da.step) == (db.header, db.encoding, db.step)
        assert np.array_equal(image_to_array(da), image_to_array(db))
    for (_, a), (_, b) in zip(written['/cam/image_raw'], got['/cam/image_raw'], strict=True):
        assert np.array_equal(image_to_array(decode('/cam/image_raw', b)), 255 - image_to_array(decode('/cam/image_raw', a)))
    for (_, a), (_, b) in zip(written['/cam/compressed'], got['/cam/compressed'], strict=True):
        x = cv2.imdecode(np.frombuffer(bytes(decode('/cam/compressed', a).data), np.uint8), cv2.IMREAD_COLOR)
        y = cv2.imdecode(np.frombuffer(bytes(decode('/cam/compressed', b).data), np.uint8), cv2.IMREAD_COLOR)
        assert decode('/cam/compressed', b).format == 'jpeg'
        assert np.abs(y.astype(int) - (255 - x.astype(int))).mean() < 8  # JPEG re-encoding
    audio_in = np.concatenate([audio_to_array(decode('/audio', r))[:, 0] for _, r in written['/audio']])
    audio_out = [decode('/audio', r) for _, r in got['/audio']]
    assert [m.sample_index for m in audio_out] == [320 * k for k in range(25)]
    assert np.allclose(np.concatenate([audio_to_array(m)[:, 0] for m in audio_out]), -audio_in)
    assert report.topics['/cam/image_raw'].action == 'faces' and report.topics['/cam/depth'].action == 'depth'
    assert report.topics['/chatter'].action == 'copy' and report.topics['/audio'].messages_out == 25

    with Reader(dst) as reader:
        conns = {c.topic: c for c in reader.connections}
        assert conns['/audio'].digest == resolve_type('anon_ros_msgs/msg/AudioStamped').rihs01
        assert conns['/cam/image_raw'].digest == resolve_type('sensor_msgs/msg/Image').rihs01
    if storage is StorageFormat.MCAP:
        with (dst / 'out_0.mcap').open('rb') as f:
            counts: dict[str, int] = {}
            for _, channel, message, decoded in make_reader(f, decoder_factories=[DecoderFactory()]) \
                    .iter_decoded_messages():
                counts[channel.topic] = counts.get(channel.topic, 0) + 1
                if channel.topic == '/cam/image_raw':
                    assert message.log_time == T0 + (decoded.header.stamp.sec * 10**9 + decoded.header.stamp.nanosec
                                                     - T0) + 5_000_000
        assert counts == {t: len(m) for t, m in written.items()}


@pytest.mark.parametrize('action', list(FailureAction))
def test_a_frame_the_anonymizer_cannot_process_is_masked_or_dropped(tmp_path: Path, action: FailureAction) -> None:
    src, dst = tmp_path / 'in', tmp_path / 'out'
    written = make_input_bag(src)
    def face(topic: str):
        calls = {'n': 0}  # per stream: every second frame of each camera fails

        def run(rgb: np.ndarray, depth: np.ndarray | None, enc: str) -> np.ndarray:
            calls['n'] += 1
            if calls['n'] % 2 == 0:
                raise RuntimeError('detector crashed')
            return invert(rgb, depth, enc)
        return run

    def bad_voice(rate: int) -> Negate:
        class Broken(Negate):
            def process(self, chunk: np.ndarray) -> np.ndarray:
                raise RuntimeError('voice backend crashed')
        return Broken()

    report = anonymize_bag(src, dst, face, bad_voice, BagAnonymizeConfig(on_failure=action))
    got = read_bag(dst)
    originals = {bytes(decode('/cam/image_raw', r).data) for _, r in written['/cam/image_raw']}
    for topic in ('/cam/image_raw', '/cam/compressed'):
        assert report.topics[topic].failed == 2
        expected = 4 if action is FailureAction.MASK else 2
        assert len(got[topic]) == expected
    for _, raw in got['/cam/image_raw']:
        data = bytes(decode('/cam/image_raw', raw).data)
        assert data not in originals
    masked = [r for _, r in got['/cam/image_raw'] if not any(decode('/cam/image_raw', r).data)]
    assert len(masked) == (2 if action is FailureAction.MASK else 0)
    # Audio that cannot be anonymized becomes silence, never the input voice.
    assert all(not np.any(audio_to_array(decode('/audio', r))) for _, r in got['/audio'])


def test_unknown_encoding_and_unsupported_media_stop_with_a_clear_error(tmp_path: Path) -> None:
    src = tmp_path / 'in'
    with BagWriter(src) as w:
        i = w.add_topic('/cam/bayer', resolve_type('sensor_msgs/msg/Image'))
        img = Image(height=2, width=2, encoding='bayer_rggb8', step=2, data=bytes(4))
        w.write(i, T0, serialize_message(img))
    with pytest.raises(OfflineError, match=r"/cam/bayer: cannot anonymize image encoding 'bayer_rggb8'"):
        anonymize_bag(src, tmp_path / 'out', lambda t: invert, lambda r: Negate())
    # Excluding the topic lets the run go on without it.
    anonymize_bag(src, tmp_path / 'out2', lambda t: invert, lambda r: Negate(),
                  BagAnonymizeConfig(exclude=frozenset({'/cam/bayer'})))
    assert read_bag(tmp_path / 'out2') == {}

    src2 = tmp_path / 'in2'
    with BagWriter(src2) as w:
        w.add_topic('/cam/compressed', resolve_type('sensor_msgs/msg/CompressedImage'))
        w.write(0, T0, serialize_message(CompressedImage(format='tiff', data=b'II*\x00')))
    with pytest.raises(OfflineError, match="unknown CompressedImage format 'tiff'"):
        anonymize_bag(src2, tmp_path / 'out3', lambda t: invert, lambda r: Negate())


def test_humble_sqlite3_bag_without_type_hashes(tmp_path: Path) -> None:
    """A bag as Humble's rosbag2 writes it: metadata version 5, QoS as a YAML string, no type hashes."""
    src = tmp_path / 'in'
    written = make_input_bag(src, StorageFormat.SQLITE3, frames=2)
    meta_path = src / 'metadata.yaml'
    meta = yaml.safe_load(meta_path.read_text())
    info = meta['rosbag2_bagfile_information']
    info['version'] = 5
    for item in info['topics_with_message_count']:
        item['topic_metadata'].pop('type_description_hash')
        item['topic_metadata']['offered_qos_profiles'] = ''
    for key in ('ros_distro',):
        info.pop(key)
    meta_path.write_text(yaml.safe_dump(meta))
    import sqlite3

    con = sqlite3.connect(src / 'in_0.db3')
    con.execute('DROP TABLE message_definitions')  # Humble: schema 3, no definitions, no type hashes
    con.execute('ALTER TABLE topics DROP COLUMN type_description_hash')
    con.execute('UPDATE schema SET schema_version = 3')
    con.commit()
    con.close()
    anonymize_bag(src, tmp_path / 'out', lambda t: invert, lambda r: Negate())
    got = read_bag(tmp_path / 'out')
    assert {t: len(m) for t, m in got.items()} == {t: len(m) for t, m in written.items()}
    with Reader(tmp_path / 'out') as reader:
        for conn in reader.connections:
            assert conn.digest == resolve_type(conn.msgtype).rihs01


def _face_box(rgb: np.ndarray) -> tuple[int, int, int, int]:
    from anon_ros.core.detection import CenterFaceDetector

    faces = CenterFaceDetector(None, 320, 0.5, 1)(rgb)
    boxes = np.asarray(faces.boxes)
    assert len(boxes) >= 1, 'the sample photo should show a face'
    x1, y1, x2, y2 = boxes[np.argmax((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))][:4]
    return int(x1), int(y1), int(x2), int(y2)


@pytest.mark.timeout(300)
@pytest.mark.parametrize('photo', ['astronaut', 'grace_hopper'])
def test_real_anonymizers_change_faces_not_background(tmp_path: Path, photo: str) -> None:
    from anon_ros.offline import default_face_factory, default_voice_factory

    src, dst = tmp_path / 'in', tmp_path / 'out'
    written = make_input_bag(src, frames=2, photo=photo)
    report = anonymize_bag(src, dst, default_face_factory(threads=1), default_voice_factory(seed=1))
    got = read_bag(dst)
    assert report.topics['/cam/image_raw'].failed == 0
    before = image_to_array(decode('/cam/image_raw', written['/cam/image_raw'][0][1]))
    after = image_to_array(decode('/cam/image_raw', got['/cam/image_raw'][0][1]))
    x1, y1, x2, y2 = _face_box(np.ascontiguousarray(before))
    face_diff = np.abs(after[y1:y2, x1:x2].astype(int) - before[y1:y2, x1:x2].astype(int)).mean()
    assert face_diff > 20, f'face region barely changed (mean abs diff {face_diff:.1f})'
    # Far from the head (below the box by one head height) the picture is untouched.
    h = y2 - y1
    if y2 + 2 * h < before.shape[0]:
        below = slice(y2 + 2 * h, before.shape[0])
        assert np.array_equal(after[below], before[below])
    # Voice: same length and stamps, different samples.
    a = np.concatenate([audio_to_array(decode('/audio', r))[:, 0] for _, r in written['/audio']])
    b = np.concatenate([audio_to_array(decode('/audio', r))[:, 0] for _, r in got['/audio']])
    assert a.shape == b.shape and np.abs(a - b).mean() > 0.01


def padded_depth(depth: np.ndarray, padding: int) -> Image:
    """A 32FC1 Image whose rows carry ``padding`` extra bytes (``step`` > width x 4), as some drivers publish."""
    msg = fill_image(Image(), depth, '32FC1')
    if padding:
        rows = np.zeros((depth.shape[0], depth.shape[1] * 4 + padding), np.uint8)
        rows[:, :depth.shape[1] * 4] = depth.view(np.uint8).reshape(depth.shape[0], -1)
        msg.step = rows.shape[1]
        msg.data = rows.tobytes()
    return msg


@pytest.mark.parametrize('row_padding', [0, 8])
def test_paired_depth_keeps_the_scene_and_loses_the_face_geometry(tmp_path: Path, row_padding: int) -> None:
    """A depth map of a face is 3D face geometry: where the image was anonymized, the paired depth becomes flat at
    the head's depth; elsewhere it is unchanged. A depth frame of a failed image, or one no image used, is blank."""
    src, dst = tmp_path / 'in', tmp_path / 'out'
    rng = np.random.default_rng(3)
    rgb = rng.integers(1, 256, (64, 80, 3), dtype=np.uint8)  # no zero: blanking the head changes every pixel
    depth = (3.0 + 0.01 * rng.standard_normal((64, 80))).astype(np.float32)
    yy, xx = np.mgrid[10:30, 20:40]
    depth[10:30, 20:40] = 1.5 - 0.05 * np.exp(-((yy - 20) ** 2 + (xx - 30) ** 2) / 40.0)  # a nose on a face
    with BagWriter(src) as w:
        img_id = w.add_topic('/cam/image', resolve_type('sensor_msgs/msg/Image'))
        depth_id = w.add_topic('/cam/depth', resolve_type('sensor_msgs/msg/Image'))
        for i, stamp in enumerate([T0, T0 + 10**8, T0 + 2 * 10**8, T0 + 9 * 10**8]):
            if i < 3:  # the last depth frame has no image near it
                img = fill_image(Image(), rgb, 'rgb8')
                _stamp(img, stamp)
                w.write(img_id, stamp, serialize_message(img))
            d = padded_depth(depth, row_padding)
            _stamp(d, stamp)
            w.write(depth_id, stamp + 1, serialize_message(d))

    def face(topic: str):
        calls = {'n': 0}

        def run(frame: np.ndarray, d: np.ndarray | None, enc: str) -> np.ndarray:
            calls['n'] += 1
            if calls['n'] == 2:
                raise RuntimeError('detector crashed')
            out = frame.copy()
            out[10:30, 20:40] = 0  # "the head"
            return out
        return HoldBack(run, delay=1)

    report = anonymize_bag(src, dst, face, lambda rate: Negate(), BagAnonymizeConfig(depth_pairs={'/cam/image': '/cam/depth'}))
    assert report.topics['/cam/depth'].messages_out == 4 and report.topics['/cam/image'].failed == 1
    got = {ts: image_to_array(decode('/cam/depth', raw)) for ts, raw in read_bag(dst)['/cam/depth']}
    first, failed, third, alone = (got[s + 1] for s in [T0, T0 + 10**8, T0 + 2 * 10**8, T0 + 9 * 10**8])
    for out in (first, third):
        head = out[10:30, 20:40]
        assert np.all(head == head[0, 0]) and abs(float(head[0, 0]) - 1.5) < 0.06  # flat, at the head's distance
        away = np.ones(depth.shape, bool)
        away[6:34, 16:44] = False  # the head grown by the margin
        assert np.array_equal(out[away], depth[away])
    assert np.isnan(failed).all() and np.isnan(alone).all()


@pytest.mark.timeout(300)
def test_the_command_warns_about_depth_it_copies_unchanged(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from anon_ros.cli import main

    src = tmp_path / 'in'
    make_input_bag(src, frames=2)
    assert main(['anonymize-bag', str(src), str(tmp_path / 'unpaired'), '--quiet', '--seed', '1']) == 0
    err = capsys.readouterr().err
    assert '/cam/depth [sensor_msgs/msg/Image] unpaired depth, copied: 2 in, 2 out' in err
    assert 'warning: /cam/depth is depth copied unchanged' in err and '--depth IMAGE=/cam/depth' in err
    assert main(['anonymize-bag', str(src), str(tmp_path / 'paired'), '--quiet', '--seed', '1',
                 '--depth', '/cam/image_raw=/cam/depth']) == 0
    err = capsys.readouterr().err
    assert '/cam/depth [sensor_msgs/msg/Image] depth: 2 in, 2 out' in err and 'warning' not in err
