"""Bag benchmarks: BagWriter write rate, sustained recording of 1280x720 RGB-D at 30 Hz + audio through a real rclpy
graph (recorder in its own process), and offline anonymization speed as a multiple of real time.

Run: bash -c 'source scripts/env.sh && in_private_network .venv/bin/python bench/bench_bags.py'
(DDS stays on loopback either way: the script applies the local DDS settings itself.)
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from anon_ros.cli import ensure_ament_prefix
from anon_ros.dds import apply_local_dds_env

apply_local_dds_env(domain_id=int(os.environ['ROS_DOMAIN_ID']) if 'ROS_DOMAIN_ID' in os.environ else None)
ensure_ament_prefix()

W, H, HZ, AUDIO_RATE, CHUNK = 1280, 720, 30, 16000, 320


def _scene(i: int, w: int = W, h: int = H) -> np.ndarray:
    """A frame with two real faces (astronaut, grace_hopper; 300x330 px at 720p) drifting across a textured
    background."""
    import cv2

    from anon_ros.core.sample_images import load_sample_image

    rng = np.random.default_rng(0)
    frame = (rng.integers(60, 200, (h // 8 + 1, w // 8 + 1, 3), dtype=np.uint8)).repeat(8, 0).repeat(8, 1)[:h, :w]
    frame = np.ascontiguousarray(frame)
    sx, sy = w / 1280, h / 720
    fw, fh = round(300 * min(sx, sy)), round(330 * min(sx, sy))
    for k, name in enumerate(('astronaut', 'grace_hopper')):
        img = cv2.resize(np.asarray(load_sample_image(name)), (fw, fh))
        x = round((100 + k * 600 + (i * 3) % 200) * sx)
        y = round(200 * sy)
        frame[y:y + fh, x:x + fw] = img
    return frame


def bench_writer(tmp: Path, n: int = 150) -> None:
    from rclpy.serialization import serialize_message
    from sensor_msgs.msg import Image

    from anon_ros.bags import BagWriter, StorageFormat, resolve_type
    from anon_ros.conversions import fill_image

    raw = serialize_message(fill_image(Image(), _scene(0), 'rgb8'))
    for storage in StorageFormat:
        path = tmp / f'writer_{storage.value}'
        t0 = time.perf_counter()
        with BagWriter(path, storage) as w:
            tid = w.add_topic('/cam/image', resolve_type('sensor_msgs/msg/Image'))
            for k in range(n):
                w.write(tid, k, raw)
                if k % 30 == 29:
                    w.flush()
        dt = time.perf_counter() - t0
        print(f'BagWriter {storage.value:7s}: {n / dt:6.1f} msg/s of 1280x720 rgb8 ({n * len(raw) / dt / 1e6:.0f} MB/s, '
              f'flush every 30)')


def bench_recorder(tmp: Path, seconds: float) -> None:
    from rosbags.rosbag2 import Reader
    from sensor_msgs.msg import Image

    from anon_ros.conversions import fill_audio, fill_image
    from anon_ros.nodes.common import AUDIO_OUT_QOS, IMAGE_OUT_QOS
    from anon_ros.nodes.provenance import AnonymizedOutputs
    from anon_ros.testing.ros_graph import RosGraph, python_process, wait_until
    from anon_ros_msgs.msg import AudioStamped

    bag = tmp / 'recorded'
    topics = '[/cam/image_anonymized,/cam/depth,/audio_anonymized]'
    args = ['-m', 'anon_ros.nodes.recorder', '--ros-args', '-p', f'topics:={topics}', '-p', f'output:={bag}',
            '-p', 'queue_depth:=30']
    rgb = fill_image(Image(), _scene(0), 'rgb8')
    depth = fill_image(Image(), np.full((H, W), 3.5, np.float32), '32FC1')
    audio = fill_audio(AudioStamped(), np.zeros(CHUNK, np.float32), AUDIO_RATE)
    with RosGraph() as graph, python_process(args) as proc:
        node = graph.node('anonymizer')
        pubs = {
            'image': node.create_publisher(Image, '/cam/image_anonymized', IMAGE_OUT_QOS),
            'depth': node.create_publisher(Image, '/cam/depth', IMAGE_OUT_QOS),
            'audio': node.create_publisher(AudioStamped, '/audio_anonymized', AUDIO_OUT_QOS),
        }
        outputs = AnonymizedOutputs(node)
        for p in pubs.values():
            outputs.add(p)
        if not wait_until(lambda: all(node.get_subscriptions_info_by_topic(p.topic_name) for p in pubs.values()), 30):
            print('recorder did not subscribe:', proc.stdout.read() if proc.poll() is not None else '(running)')
            return
        time.sleep(1.0)
        sent = {k: 0 for k in pubs}
        t0 = time.monotonic()
        frame_period, audio_period = 1 / HZ, CHUNK / AUDIO_RATE
        next_frame, next_audio = t0, t0
        while time.monotonic() - t0 < seconds:
            now = time.monotonic()
            if now >= next_frame:
                stamp = time.time_ns()
                for key, msg in (('image', rgb), ('depth', depth)):
                    msg.header.stamp.sec, msg.header.stamp.nanosec = stamp // 10**9, stamp % 10**9
                    pubs[key].publish(msg)
                    sent[key] += 1
                next_frame += frame_period
            if now >= next_audio:
                audio.sample_index = sent['audio'] * CHUNK
                pubs['audio'].publish(audio)
                sent['audio'] += 1
                next_audio += audio_period
            time.sleep(max(0.0, min(next_frame, next_audio) - time.monotonic()))
        elapsed = time.monotonic() - t0
        time.sleep(2.0)
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=30)
        closed = [line for line in (proc.stdout.read() if proc.stdout else '').splitlines() if 'closed' in line]
    with Reader(bag) as reader:
        counts = {c.topic: c.msgcount for c in reader.connections}
        size = sum(f.stat().st_size for f in bag.glob('*.mcap'))
    got = {'image': counts.get('/cam/image_anonymized', 0), 'depth': counts.get('/cam/depth', 0),
           'audio': counts.get('/audio_anonymized', 0)}
    print(f'recorder ({elapsed:.1f} s at {HZ} Hz 1280x720 rgb8 + 32FC1 depth + {AUDIO_RATE} Hz audio in '
          f'{CHUNK}-sample chunks):')
    for key, n in sent.items():
        print(f'  {key:5s}: recorded {got[key]}/{n} ({got[key] / elapsed:.1f}/s, drops {n - got[key]})')
    print(f'  {size / elapsed / 1e6:.0f} MB/s sustained to disk; load average {os.getloadavg()[0]:.1f} on '
          f'{os.cpu_count()} cores')
    for line in closed:
        print('  recorder:', line.split(': ', 1)[-1][-400:])


def bench_offline(tmp: Path, seconds: float, detect_every: int, threads: int, size: tuple[int, int] = (W, H)) -> None:
    from rclpy.serialization import serialize_message
    from sensor_msgs.msg import Image

    from anon_ros.bags import BagWriter, resolve_type
    from anon_ros.conversions import fill_audio, fill_image
    from anon_ros.offline import (
        BagAnonymizeConfig,
        anonymize_bag,
        default_face_factory,
        default_voice_factory,
    )
    from anon_ros_msgs.msg import AudioStamped

    w_px, h_px = size
    src = tmp / f'offline_in_{detect_every}_{threads}_{w_px}x{h_px}'
    n = int(seconds * HZ)
    t0 = 1_700_000_000 * 10**9
    rng = np.random.default_rng(1)
    with BagWriter(src) as w:
        img_id = w.add_topic('/cam/image', resolve_type('sensor_msgs/msg/Image'))
        depth_id = w.add_topic('/cam/depth', resolve_type('sensor_msgs/msg/Image'))
        audio_id = w.add_topic('/audio', resolve_type('anon_ros_msgs/msg/AudioStamped'))
        depth = fill_image(Image(), np.full((h_px, w_px), 3.5, np.float32), '32FC1')
        for i in range(n):
            ts = t0 + i * 10**9 // HZ
            img = fill_image(Image(), _scene(i, w_px, h_px), 'rgb8')
            for m in (img, depth):
                m.header.stamp.sec, m.header.stamp.nanosec = ts // 10**9, ts % 10**9
            w.write(img_id, ts, serialize_message(img))
            w.write(depth_id, ts, serialize_message(depth))
        for k in range(int(seconds * AUDIO_RATE / CHUNK)):
            ts = t0 + k * CHUNK * 10**9 // AUDIO_RATE
            a = fill_audio(AudioStamped(), (0.1 * rng.standard_normal(CHUNK)).astype(np.float32), AUDIO_RATE)
            a.header.stamp.sec, a.header.stamp.nanosec = ts // 10**9, ts % 10**9
            a.sample_index = k * CHUNK
            w.write(audio_id, ts, serialize_message(a))
    cpu0 = time.process_time()
    report = anonymize_bag(
        src, tmp / f'offline_out_{detect_every}_{threads}_{w_px}x{h_px}', default_face_factory(threads, detect_every),
        default_voice_factory(seed=0), BagAnonymizeConfig(depth_pairs={'/cam/image': '/cam/depth'}),
    )
    cpu = time.process_time() - cpu0
    print(f'anonymize-bag (detect_every={detect_every}, {threads} detector threads): {seconds:.1f} s of '
          f'{w_px}x{h_px} RGB-D at {HZ} Hz + audio in '
          f'{report.wall_s:.1f} s = {report.realtime_factor:.2f}x real time '
          f'({n / report.wall_s:.1f} frames/s, {report.topics["/cam/image"].failed} failed); '
          f'{cpu / seconds:.2f} CPU s per bag s (real time on 2 idle cores needs < 2 and threads that overlap); '
          f'load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores')


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--seconds', type=float, default=10.0, help='recording length (default 10 s)')
    parser.add_argument('--offline-seconds', type=float, default=10.0, help='bag length for the offline run')
    parser.add_argument('--detect-every', type=int, action='append', default=None,
                        help='keyframe spacing of the offline runs (repeatable; default 3)')
    parser.add_argument('--offline-size', action='append', default=None, metavar='WxH',
                        help='frame size of the offline runs (repeatable; default 1280x720 and 640x480)')
    parser.add_argument('--threads', type=int, action='append', default=None,
                        help='detector threads of the offline runs (repeatable; default 1)')
    parser.add_argument('--skip', action='append', default=[], choices=['writer', 'recorder', 'offline'])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix='bench_bags_') as tmp_name:
        tmp = Path(tmp_name)
        if 'writer' not in args.skip:
            bench_writer(tmp)
        if 'recorder' not in args.skip:
            bench_recorder(tmp, args.seconds)
        if 'offline' not in args.skip:
            for every in args.detect_every or [3]:
                for threads in args.threads or [1]:
                    for size in args.offline_size or ['1280x720', '640x480']:
                        w_px, h_px = (int(v) for v in size.split('x'))
                        bench_offline(tmp, args.offline_seconds, every, threads, (w_px, h_px))
    return 0


if __name__ == '__main__':
    sys.exit(main())
