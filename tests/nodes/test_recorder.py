"""The recorder node through a real rclpy graph: provenance refusal, payloads and stamps, a SIGKILL mid-recording."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest
from mcap.exceptions import EndOfFile
from mcap.reader import NonSeekingReader
from mcap_ros2.decoder import DecoderFactory
from rclpy.parameter import Parameter
from rosbags.rosbag2 import Reader
from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from sensor_msgs.msg import Image

from anon_ros.bags import reindex, resolve_type
from anon_ros.conversions import fill_audio, fill_image
from anon_ros.nodes.common import AUDIO_OUT_QOS, IMAGE_OUT_QOS
from anon_ros.nodes.provenance import AnonymizedOutputs
from anon_ros.nodes.recorder import RecorderNode, TopicState
from anon_ros.testing.ros_graph import python_process, wait_until
from anon_ros_msgs.msg import AudioStamped

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.timeout(120)


def _image(i: int, value: int | None = None) -> Image:
    arr = np.full((24, 32, 3), i % 250 if value is None else value, np.uint8)
    msg = fill_image(Image(), arr, 'rgb8')
    msg.header.stamp.sec, msg.header.stamp.nanosec = 1000 + i, 7
    msg.header.frame_id = 'cam'
    return msg


def _audio(i: int) -> AudioStamped:
    msg = fill_audio(AudioStamped(), np.full(320, i / 100, np.float32), 16000)
    msg.header.stamp.sec, msg.header.stamp.nanosec = 2000 + i, 0
    msg.sample_index = 320 * i
    return msg


def _anonymizer(graph, name: str = 'face_anonymizer'):
    node = graph.node(name)
    image_pub = node.create_publisher(Image, '/cam/image_anonymized', IMAGE_OUT_QOS)
    audio_pub = node.create_publisher(AudioStamped, '/audio_anonymized', AUDIO_OUT_QOS)
    outputs = AnonymizedOutputs(node)
    outputs.add(image_pub)
    outputs.add(audio_pub)
    return node, image_pub, audio_pub


def _recorder(graph, tmp_path: Path, topics: list[str], **params: object) -> RecorderNode:
    overrides = [Parameter('topics', value=topics), Parameter('output', value=str(tmp_path / 'bag'))]
    overrides += [Parameter(k, value=v) for k, v in params.items()]
    node = RecorderNode(context=graph.context, parameter_overrides=overrides)
    graph.add(node)
    return node


def _state(rec: RecorderNode, name: str) -> TopicState:
    return next(t.state for t in rec.topics if t.name == name)


def test_records_anonymized_topics_refuses_raw_and_keeps_payloads(ros_graph, tmp_path: Path) -> None:
    _, image_pub, audio_pub = _anonymizer(ros_graph)
    camera = ros_graph.node('camera')
    raw_pub = camera.create_publisher(Image, '/cam/image_raw', IMAGE_OUT_QOS)
    rec = _recorder(
        ros_graph, tmp_path, ['/cam/image_anonymized', 'audio_anonymized', '/cam/image_raw'], check_interval=0.1,
    )
    assert wait_until(
        lambda: _state(rec, '/cam/image_anonymized') is TopicState.RECORDING
        and _state(rec, '/audio_anonymized') is TopicState.RECORDING, 15.0,
    ), rec.stats()
    # The raw publisher may be discovered a little later (WAITING meanwhile, which records nothing either).
    assert wait_until(lambda: _state(rec, '/cam/image_raw') is TopicState.REFUSED, 10.0), rec.stats()
    time.sleep(0.5)  # let the recorder's subscriptions match the publishers
    images, chunks = [_image(i) for i in range(20)], [_audio(i) for i in range(40)]
    for i in range(40):
        if i < 20:
            image_pub.publish(images[i])
            raw_pub.publish(_image(i, value=255))
        audio_pub.publish(chunks[i])
        time.sleep(0.01)
    assert wait_until(lambda: rec.written >= 60, 15.0), rec.stats()
    ros_graph.executor.remove_node(rec)
    rec.destroy_node()

    bag = tmp_path / 'bag'
    # Independent reader 1: rosbags, with its own Kilted type store (+ AudioStamped from our .msg).
    store = get_typestore(Stores.ROS2_KILTED)
    store.register(get_types_from_msg((ROOT / 'anon_ros_msgs/msg/AudioStamped.msg').read_text(),
                                      'anon_ros_msgs/msg/AudioStamped'))
    with Reader(bag) as reader:
        topics = {c.topic: c for c in reader.connections}
        assert set(topics) == {'/cam/image_anonymized', '/audio_anonymized'}
        assert topics['/cam/image_anonymized'].msgcount == 20
        assert topics['/audio_anonymized'].msgcount == 40
        assert topics['/cam/image_anonymized'].digest == resolve_type('sensor_msgs/msg/Image').rihs01
        qos = topics['/cam/image_anonymized'].ext.offered_qos_profiles
        # As discovered (DDS does not announce history/depth, which ros2 bag records as unknown/0 too).
        assert [(q.reliability.name, q.durability.name) for q in qos] == [('RELIABLE', 'VOLATILE')]
        got = [
            (c.topic, store.deserialize_cdr(raw, c.msgtype)) for c, _, raw in reader.messages()
        ]
    img_msgs = [m for t, m in got if t == '/cam/image_anonymized']
    assert [m.header.stamp.sec for m in img_msgs] == [1000 + i for i in range(20)]
    assert all(bytes(m.data) == bytes(images[i].data) for i, m in enumerate(img_msgs))
    audio_msgs = [m for t, m in got if t == '/audio_anonymized']
    assert [m.sample_index for m in audio_msgs] == [320 * i for i in range(40)]

    # Independent reader 2: mcap + mcap-ros2-support, straight from the file.
    files = sorted(bag.glob('*.mcap'))
    assert len(files) == 1
    with files[0].open('rb') as f:
        decoded = [(ch.topic, m) for _, ch, _, m in NonSeekingReader(f, decoder_factories=[DecoderFactory()])
                   .iter_decoded_messages()]
    assert sum(1 for t, _ in decoded if t == '/cam/image_anonymized') == 20
    assert all(bytes(m.data) != bytes(_image(0, 255).data) for t, m in decoded if t == '/cam/image_anonymized')


def test_stops_recording_a_topic_when_a_raw_publisher_joins(ros_graph, tmp_path: Path) -> None:
    _, image_pub, _ = _anonymizer(ros_graph)
    rec = _recorder(ros_graph, tmp_path, ['/cam/image_anonymized'], check_interval=0.1)
    assert wait_until(lambda: _state(rec, '/cam/image_anonymized') is TopicState.RECORDING, 15.0)
    time.sleep(0.3)
    for i in range(5):
        image_pub.publish(_image(i))
    assert wait_until(lambda: rec.written >= 5, 10.0)
    # A raw camera is (wrongly) wired onto the anonymized topic.
    intruder = ros_graph.node('raw_camera')
    raw_pub = intruder.create_publisher(Image, '/cam/image_anonymized', IMAGE_OUT_QOS)
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline and _state(rec, '/cam/image_anonymized') is not TopicState.REFUSED:
        raw_pub.publish(_image(0, value=255))
        time.sleep(0.02)
    assert _state(rec, '/cam/image_anonymized') is TopicState.REFUSED
    for _ in range(10):
        raw_pub.publish(_image(0, value=255))
        image_pub.publish(_image(9))
    time.sleep(0.3)
    ros_graph.executor.remove_node(rec)
    rec.destroy_node()
    with Reader(tmp_path / 'bag') as reader:
        payloads = [raw for _, _, raw in reader.messages()]
    assert len(payloads) >= 5
    raw_bytes = bytes(_image(0, value=255).data)
    assert not any(raw_bytes in p for p in payloads), 'a raw frame reached the bag'


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_sigkill_leaves_a_bag_readable_up_to_the_last_flush(ros_graph, tmp_path: Path, storage: str) -> None:
    _, image_pub, _ = _anonymizer(ros_graph)
    bag = tmp_path / 'bag'
    args = [
        '-m', 'anon_ros.nodes.recorder', '--ros-args', '-p', 'topics:=[/cam/image_anonymized]',
        '-p', f'output:={bag}', '-p', f'storage:={storage}', '-p', 'flush_interval:=0.2', '-p', 'check_interval:=0.1',
    ]
    with python_process(args) as proc:
        node = ros_graph.node('probe')
        # The recorder subscribes only once it judged the topic: wait for its subscription to appear.
        assert wait_until(lambda: node.count_subscribers('/cam/image_anonymized') > 0, 30.0), proc
        time.sleep(0.5)
        for i in range(30):
            image_pub.publish(_image(i))
            time.sleep(0.02)
        time.sleep(1.0)  # several flush intervals
        for i in range(30, 40):  # these may or may not make it; everything before must
            image_pub.publish(_image(i))
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        assert proc.returncode == -signal.SIGKILL

    files = sorted(bag.glob('*.mcap' if storage == 'mcap' else '*.db3'))
    assert files and (bag / 'metadata.yaml').is_file()
    if storage == 'mcap':
        # Readable as is by a streaming MCAP reader, up to the last complete chunk.
        with files[0].open('rb') as f:
            stamps = []
            try:
                for _, _, _, m in NonSeekingReader(f, decoder_factories=[DecoderFactory()]).iter_decoded_messages(
                        log_time_order=False):
                    stamps.append(m.header.stamp.sec)
            except EndOfFile:  # the unfinished tail after the last flushed chunk
                pass
        assert stamps[:30] == [1000 + i for i in range(30)]
    report = reindex(bag)
    assert report.message_count >= 30
    with Reader(bag) as reader:
        store = get_typestore(Stores.ROS2_KILTED)
        secs = [store.deserialize_cdr(raw, c.msgtype).header.stamp.sec for c, _, raw in reader.messages()]
        assert reader.message_count == len(secs)
    assert secs == [1000 + i for i in range(len(secs))]
    assert len(secs) >= 30


def test_bad_parameters_stop_the_node_with_a_message_naming_them(ros_graph, tmp_path: Path) -> None:
    from anon_ros.nodes.common import ParameterError

    with pytest.raises(ParameterError, match='topics'):
        RecorderNode(context=ros_graph.context)
    (tmp_path / 'bag').mkdir()
    with pytest.raises(ParameterError, match='output.*exists already'):
        _recorder(ros_graph, tmp_path, ['/cam/image_anonymized'])
    with pytest.raises(ParameterError, match='storage'):
        _recorder(ros_graph, tmp_path / 'x', ['/a'], storage='rosbag1')
