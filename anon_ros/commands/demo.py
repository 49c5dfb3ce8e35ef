"""``anon-ros demo``: the embedded demo. For now a minimal live graph: 720p RGB-D at 30 Hz across two processes."""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from anon_ros.testing.ros_graph import python_process


def add_parser(subparsers: argparse._SubParsersAction, name: str, help_text: str) -> None:
    parser = subparsers.add_parser(name, help=help_text, description=__doc__)
    parser.add_argument('--duration', type=float, default=5.0, help='seconds to stream')
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    probe = ['-m', 'anon_ros.testing.dds_probe']
    expected = int(round(30 * args.duration))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / 'probe.json'
        with python_process([*probe, 'subscribe', '--expect', str(expected), '--out', str(out)]) as sub:
            with python_process([*probe, 'publish', '--duration', str(args.duration)]) as pub:
                pub.wait()
            sub.wait()
        result = json.loads(out.read_text())
    for topic, r in result.items():
        print(f'{topic}: {r["delivered_fraction"]:.1%} delivered, latency p50 {r["latency_p50_ms"]:.1f} ms')
    return 0 if all(r['delivered_fraction'] >= 0.99 for r in result.values()) else 1
