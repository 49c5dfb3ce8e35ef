"""anon_ros.bags without a ROS graph: type hashes match Kilted, splitting, metadata, crash repair, independent readers."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from mcap.reader import make_reader
from rclpy.serialization import serialize_message
from rosbags.interfaces import (
    Qos,
    QosDurability,
    QosHistory,
    QosLiveliness,
    QosReliability,
    QosTime,
)
from rosbags.rosbag2 import Reader
from sensor_msgs.msg import Image

from anon_ros.bags import (
    BagError,
    BagWriter,
    SplitPolicy,
    StorageFormat,
    reindex,
    resolve_type,
)

T0 = 1_700_000_000 * 10**9
INF = QosTime(9223372036, 854775807)
QOS = Qos(QosHistory.UNKNOWN, 0, QosReliability.RELIABLE, QosDurability.VOLATILE, INF, INF,
          QosLiveliness.AUTOMATIC, INF, False)


def _raw(i: int, size: int = 1000) -> bytes:
    msg = Image(height=1, width=size, encoding='mono8', step=size, data=bytes([i % 256]) * size)
    msg.header.stamp.sec = i
    return serialize_message(msg)


def _share(pkg: str) -> Path:
    return Path(sys.prefix) / 'share' / pkg / 'msg'


@pytest.mark.parametrize('msgtype', ['sensor_msgs/msg/Image', 'sensor_msgs/msg/CompressedImage',
                                     'anon_ros_msgs/msg/AudioStamped'])
def test_type_hashes_match_the_kilted_build(msgtype: str) -> None:
    pkg, _, name = msgtype.split('/')
    path = _share(pkg) / f'{name}.json'
    assert path.is_file(), f'{path} not installed (scripts/setup.sh builds anon_ros_msgs)'
    expected = json.loads(path.read_text())['type_hashes'][0]
    assert expected['type_name'] == msgtype
    assert resolve_type(msgtype).rihs01 == expected['hash_string']


def test_unknown_type_is_a_clear_error() -> None:
    with pytest.raises(BagError, match='no definition of message type'):
        resolve_type('nope_msgs/msg/Nothing')


@pytest.mark.parametrize('storage', list(StorageFormat))
def test_split_by_size_and_metadata(tmp_path: Path, storage: StorageFormat) -> None:
    bag = tmp_path / 'bag'
    with BagWriter(bag, storage, SplitPolicy(max_bytes=5500)) as w:
        tid = w.add_topic('/img', resolve_type('sensor_msgs/msg/Image'), [QOS])
        for i in range(20):
            w.write(tid, T0 + i * 10**8, _raw(i))
    files = [f'bag_{i}{storage.suffix}' for i in range(4)]
    assert sorted(files) == sorted(p.name for p in bag.glob(f'*{storage.suffix}'))
    assert len(files) == 4, files  # 5 messages of ~1.05 kB per file
    with Reader(bag) as reader:
        assert reader.message_count == 20
        conn = reader.connections[0]
        assert (conn.topic, conn.msgtype, conn.msgcount) == ('/img', 'sensor_msgs/msg/Image', 20)
        assert conn.ext.offered_qos_profiles == [QOS]
        assert [ts for _, ts, _ in reader.messages()] == [T0 + i * 10**8 for i in range(20)]
        assert reader.start_time == T0 and reader.duration == 19 * 10**8 + 1
    import yaml

    info = yaml.safe_load((bag / 'metadata.yaml').read_text())['rosbag2_bagfile_information']
    assert (info['version'], info['storage_identifier'], info['ros_distro']) == (9, storage.value, 'kilted')
    assert info['relative_file_paths'] == files and [f['message_count'] for f in info['files']] == [5, 5, 5, 5]
    topic = info['topics_with_message_count'][0]['topic_metadata']
    assert topic['type_description_hash'] == resolve_type('sensor_msgs/msg/Image').rihs01
    assert topic['offered_qos_profiles'][0]['reliability'] == 'reliable'


def test_split_by_duration(tmp_path: Path) -> None:
    bag = tmp_path / 'bag'
    with BagWriter(bag, split=SplitPolicy(max_duration_ns=10**9)) as w:
        tid = w.add_topic('/img', resolve_type('sensor_msgs/msg/Image'))
        for i in range(25):
            w.write(tid, T0 + i * 10**8, _raw(i, 10))
    assert len(list(bag.glob('*.mcap'))) == 3
    with Reader(bag) as reader:
        assert reader.message_count == 25


def test_existing_output_is_never_overwritten(tmp_path: Path) -> None:
    (tmp_path / 'bag').mkdir()
    with pytest.raises(BagError, match='exists already'):
        BagWriter(tmp_path / 'bag').open()


def _interrupted_copy(tmp_path: Path, storage: StorageFormat, flushed: int, unflushed: int) -> Path:
    """A bag as a killed writer leaves it: copied while open, after ``flushed`` flushed and more unflushed messages."""
    bag, copy = tmp_path / 'live' / 'crashed', tmp_path / 'crashed'
    w = BagWriter(bag, storage).open()
    tid = w.add_topic('/img', resolve_type('sensor_msgs/msg/Image'))
    for i in range(flushed):
        w.write(tid, T0 + i, _raw(i))
    w.flush()
    for i in range(flushed, flushed + unflushed):
        w.write(tid, T0 + i, _raw(i))
    shutil.copytree(bag, copy)  # the state on disk at the moment of the kill
    w.close()
    return copy


@pytest.mark.parametrize('storage', list(StorageFormat))
def test_reindex_recovers_everything_flushed(tmp_path: Path, storage: StorageFormat) -> None:
    bag = _interrupted_copy(tmp_path, storage, flushed=12, unflushed=3)
    report = reindex(bag)
    assert report.message_count == 12 and report.topics == {'/img': 12}
    assert report.sealed == (('crashed_0.mcap',) if storage is StorageFormat.MCAP else ())
    with Reader(bag) as reader:
        assert [ts for _, ts, _ in reader.messages()] == [T0 + i for i in range(12)]
        assert reader.connections[0].digest == resolve_type('sensor_msgs/msg/Image').rihs01
    if storage is StorageFormat.MCAP:
        with (bag / 'crashed_0.mcap').open('rb') as f:
            assert sum(1 for _ in make_reader(f).iter_messages()) == 12
    assert reindex(bag).message_count == 12  # idempotent


def test_reindex_drops_a_half_written_chunk(tmp_path: Path) -> None:
    bag = _interrupted_copy(tmp_path, StorageFormat.MCAP, flushed=5, unflushed=0)
    path = bag / 'crashed_0.mcap'
    with BagWriter(tmp_path / 'more') as w:  # append half of a further chunk record by hand
        w.add_topic('/img', resolve_type('sensor_msgs/msg/Image'))
        w.write(0, T0, _raw(99, 5000))
    tail = (tmp_path / 'more' / 'more_0.mcap').read_bytes()
    chunk_at = tail.index(b'\x06', 8 + 9)  # some record after the header
    with path.open('ab') as f:
        f.write(tail[chunk_at:chunk_at + 3000])
    report = reindex(bag)
    assert report.message_count == 5


def test_cli_bag_reindex(tmp_path: Path) -> None:
    bag = _interrupted_copy(tmp_path, StorageFormat.MCAP, flushed=3, unflushed=1)
    out = subprocess.run([sys.executable, '-m', 'anon_ros.cli', 'bag-reindex', str(bag)], capture_output=True,
                         text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert '3 messages' in out.stdout


def test_write_behind_writes_everything_in_order_and_reports_a_failure(tmp_path: Path) -> None:
    from anon_ros.bags import WriteBehind

    payloads = [bytes([i]) * (1000 + i) for i in range(50)]
    with BagWriter(tmp_path / 'bag') as writer:
        tid = writer.add_topic('/blob', resolve_type('std_msgs/msg/String'))
        behind = WriteBehind(writer, max_bytes=4000)  # a few messages at a time: write() must wait for the thread
        for i, data in enumerate(payloads):
            behind.write(tid, 1_000 + i, data)
        behind.close()
    with Reader(tmp_path / 'bag') as reader:
        got = [(ts, bytes(raw)) for _, ts, raw in reader.messages()]
    assert got == [(1_000 + i, d) for i, d in enumerate(payloads)]

    broken = BagWriter(tmp_path / 'broken').open()
    tid = broken.add_topic('/blob', resolve_type('std_msgs/msg/String'))
    broken.close()  # writes to a closed bag fail in the writer thread
    behind = WriteBehind(broken)
    behind.write(tid, 1, b'x')
    with pytest.raises(BagError, match='not open'):
        behind.close()

    with BagWriter(tmp_path / 'sqlite', StorageFormat.SQLITE3) as writer, pytest.raises(BagError, match='MCAP'):
        WriteBehind(writer)


def test_write_behind_serializes_in_its_thread_and_stops_at_a_failing_message(tmp_path: Path) -> None:
    import threading

    from anon_ros.bags import WriteBehind

    made_in: list[str] = []

    def payload(i: int):
        def make() -> bytes:
            made_in.append(threading.current_thread().name)
            if i == 3:
                raise ValueError('cannot flatten this depth frame')
            return bytes([i]) * 100
        return make

    with BagWriter(tmp_path / 'bag') as writer:
        tid = writer.add_topic('/blob', resolve_type('std_msgs/msg/String'))
        behind = WriteBehind(writer)
        for i in range(3):
            behind.write(tid, 1_000 + i, payload(i), nbytes=100)
        behind.write(tid, 1_003, payload(3), nbytes=100)
        with pytest.raises(BagError, match='cannot flatten'):  # from this write if the thread failed already
            behind.write(tid, 1_004, payload(4), nbytes=100)
            behind.close()
    assert set(made_in) == {'bag_writer'}
    with Reader(tmp_path / 'bag') as reader:
        got = [(ts, bytes(raw)) for _, ts, raw in reader.messages()]
    assert got == [(1_000 + i, bytes([i]) * 100) for i in range(3)]  # nothing after the failed message
