"""Publish or receive 1280x720 RGB-D at a fixed rate and measure delivery over DDS.

Used by the two-process transport test and by ``bench/bench_dds.py``. Run as a module:

    python -m anon_ros.testing.dds_probe publish --rate 30 --duration 10
    python -m anon_ros.testing.dds_probe subscribe --expect 300 --out result.json

The publisher waits until a subscriber is matched on both topics, so no frame is sent into the void; every frame
carries its index in ``header.frame_id`` and its send time in ``header.stamp``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from anon_ros.conversions import fill_image


@dataclass
class ProbeResult:
    """What a subscriber saw of one topic."""

    received: int = 0
    indices: list[int] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)

    def summary(self, expected: int) -> dict[str, float]:
        lat = np.asarray(self.latencies_ms) if self.latencies_ms else np.asarray([np.nan])
        return {
            'expected': expected,
            'received': self.received,
            'unique': len(set(self.indices)),
            'delivered_fraction': len(set(self.indices)) / expected if expected else float('nan'),
            'latency_p50_ms': float(np.percentile(lat, 50)),
            'latency_p95_ms': float(np.percentile(lat, 95)),
            'latency_max_ms': float(np.max(lat)),
        }


def _qos(reliable: bool):  # noqa: ANN202 - rclpy types are imported lazily
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=10,
        reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
    )


def publish(width: int, height: int, rate: float, duration: float, reliable: bool, match_timeout: float) -> int:
    """Publish ``rate * duration`` rgb8 + 32FC1 pairs; return the number of pairs sent."""
    import rclpy
    from sensor_msgs.msg import Image

    rclpy.init()
    node = rclpy.create_node('dds_probe_publisher')
    pubs = {name: node.create_publisher(Image, name, _qos(reliable)) for name in ('probe/rgb', 'probe/depth')}
    deadline = time.monotonic() + match_timeout
    while any(p.get_subscription_count() == 0 for p in pubs.values()):
        if time.monotonic() > deadline:
            print(f'dds_probe: no subscriber matched within {match_timeout} s', file=sys.stderr)
            return 0
        rclpy.spin_once(node, timeout_sec=0.05)
    # Give the subscriber's discovery of us a moment to complete as well (matching is asymmetric).
    time.sleep(0.5)
    rgb = np.random.default_rng(0).integers(0, 255, (height, width, 3), dtype=np.uint8)
    depth = np.full((height, width), 2.5, np.float32)
    rgb_msg, depth_msg = Image(), Image()
    fill_image(rgb_msg, rgb, 'rgb8')
    fill_image(depth_msg, depth, '32FC1')
    count = int(round(rate * duration))
    period = 1.0 / rate
    start = time.monotonic()
    for i in range(count):
        now = node.get_clock().now().to_msg()
        for msg in (rgb_msg, depth_msg):
            msg.header.stamp = now
            msg.header.frame_id = str(i)
        pubs['probe/rgb'].publish(rgb_msg)
        pubs['probe/depth'].publish(depth_msg)
        sleep = start + (i + 1) * period - time.monotonic()
        if sleep > 0:
            time.sleep(sleep)
    time.sleep(1.0)  # let reliable retransmissions finish before the participant goes away
    node.destroy_node()
    rclpy.shutdown()
    return count


def subscribe(expect: int, timeout: float, reliable: bool, idle: float) -> dict[str, dict[str, float]]:
    """Receive until ``expect`` frames came on both topics, ``idle`` s passed without any, or ``timeout``."""
    import rclpy
    from rclpy.time import Time
    from sensor_msgs.msg import Image

    rclpy.init()
    node = rclpy.create_node('dds_probe_subscriber')
    results = {'probe/rgb': ProbeResult(), 'probe/depth': ProbeResult()}
    last = [time.monotonic()]
    first = [False]

    def make_callback(result: ProbeResult):  # noqa: ANN202
        def callback(msg: Image) -> None:
            now = node.get_clock().now()
            result.received += 1
            result.indices.append(int(msg.header.frame_id))
            result.latencies_ms.append((now - Time.from_msg(msg.header.stamp)).nanoseconds / 1e6)
            last[0] = time.monotonic()
            first[0] = True

        return callback

    for name, result in results.items():
        node.create_subscription(Image, name, make_callback(result), _qos(reliable))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.05)
        if all(len(set(r.indices)) >= expect for r in results.values()):
            break
        if first[0] and time.monotonic() - last[0] > idle:
            break
    node.destroy_node()
    rclpy.shutdown()
    return {name: r.summary(expect) for name, r in results.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('mode', choices=('publish', 'subscribe'))
    parser.add_argument('--width', type=int, default=1280)
    parser.add_argument('--height', type=int, default=720)
    parser.add_argument('--rate', type=float, default=30.0)
    parser.add_argument('--duration', type=float, default=10.0)
    parser.add_argument('--best-effort', action='store_true', help='sensor-data style QoS instead of reliable')
    parser.add_argument('--expect', type=int, default=300)
    parser.add_argument('--timeout', type=float, default=60.0)
    parser.add_argument('--idle', type=float, default=3.0, help='stop this long after the last message')
    parser.add_argument('--out', help='write the JSON result here (subscribe)')
    args = parser.parse_args(argv)
    reliable = not args.best_effort
    if args.mode == 'publish':
        sent = publish(args.width, args.height, args.rate, args.duration, reliable, match_timeout=args.timeout)
        print(json.dumps({'sent': sent}))
        return 0 if sent else 1
    summary = subscribe(args.expect, args.timeout, reliable, args.idle)
    text = json.dumps(summary, indent=2)
    if args.out:
        with open(args.out, 'w', encoding='utf-8') as f:
            f.write(text)
    print(text)
    return 0


if __name__ == '__main__':
    sys.exit(main())
