"""DDS transport benchmark: latency p50/p95 and delivered fraction for 1280x720 rgb8 + 32FC1 depth at 30 Hz.

Runs a publisher and a subscriber process (anon_ros.testing.dds_probe) on loopback, with the shipped Fast DDS
shared-memory profile and, for comparison, with Fast DDS's default transports.
Usage (inside the project environment): scripts/run.sh python bench/bench_dds.py [--duration 10]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from anon_ros.testing.ros_graph import python_process


def measure(duration: float, rate: float, reliable: bool, profile: bool) -> dict:
    probe = ['-m', 'anon_ros.testing.dds_probe']
    qos = [] if reliable else ['--best-effort']
    env = None if profile else {'FASTDDS_DEFAULT_PROFILES_FILE': ''}
    expected = int(round(rate * duration))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / 'probe.json'
        sub_args = [*probe, 'subscribe', '--expect', str(expected), '--out', str(out), *qos]
        with python_process(sub_args, env) as sub:
            pub_args = [*probe, 'publish', '--rate', str(rate), '--duration', str(duration), *qos]
            with python_process(pub_args, env) as pub:
                pub.wait(timeout=duration + 60)
            sub.wait(timeout=duration + 60)
        return json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--duration', type=float, default=10.0)
    parser.add_argument('--rate', type=float, default=30.0)
    args = parser.parse_args()
    print(f'1280x720 rgb8 + 32FC1 depth at {args.rate:g} Hz for {args.duration:g} s, two processes, loopback')
    print(f'{"transport":<28}{"QoS":<13}{"topic":<14}{"delivered":>10}{"p50 ms":>9}{"p95 ms":>9}{"max ms":>9}')
    for profile in (True, False):
        for reliable in (True, False):
            result = measure(args.duration, args.rate, reliable, profile)
            for topic, r in result.items():
                print(
                    f'{"SHM 32 MiB profile" if profile else "Fast DDS defaults":<28}'
                    f'{"reliable" if reliable else "best effort":<13}{topic.split("/")[-1]:<14}'
                    f'{r["delivered_fraction"]:>10.1%}{r["latency_p50_ms"]:>9.1f}{r["latency_p95_ms"]:>9.1f}'
                    f'{r["latency_max_ms"]:>9.1f}'
                )


if __name__ == '__main__':
    main()
