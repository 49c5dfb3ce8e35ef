"""``anon-ros demo``: the embedded demo, no CARLA and no camera needed.

Runs config/demo.graph.yaml in this process (synthetic CARLA-format RGB-D video of real people with recorded speech
-> face and voice anonymizers -> recorder) for a fixed duration, with a progress line, then writes to OUT:
``bag/`` (the anonymized rosbag2 recording), ``preview.mp4`` (original left, anonymized right, anonymized speech)
and ``summary.json`` (fps, latencies, and how many ground-truth head pixels were anonymized).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from anon_ros.core.errors import AnonRosError

GRACE_S = 3.0
"""After the source stops, how long in-flight frames and audio get to reach the monitor and the recorder."""


def add_parser(subparsers: argparse._SubParsersAction, name: str, help_text: str) -> None:
    parser = subparsers.add_parser(name, help=help_text, description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--duration', type=float, default=20.0, help='seconds of stream (default: 20)')
    parser.add_argument('--out', type=Path, default=Path('out/demo'), help='output folder (default: out/demo)')
    parser.add_argument('--people', type=int, default=None, help='people in the scene (default: config/demo.yaml)')
    parser.add_argument('--size', default=None, help='frame size WxH (default: config/demo.yaml)')
    parser.add_argument('--rate', type=float, default=None, help='frames per second (default: config/demo.yaml)')
    parser.add_argument('--config', default='demo', help='graph configuration to run (default: demo)')
    parser.set_defaults(func=run)


def _overrides(args: argparse.Namespace, bag: Path) -> dict[str, dict[str, Any]]:
    source: dict[str, Any] = {'duration': float(args.duration)}
    if args.people is not None:
        source['n_people'] = args.people
    if args.rate is not None:
        source['rate'] = float(args.rate)
    if args.size is not None:
        try:
            width, height = (int(v) for v in args.size.lower().split('x'))
        except ValueError as err:
            msg = f'--size {args.size!r}: expected WIDTHxHEIGHT, e.g. 1280x720'
            raise AnonRosError(msg) from err
        source.update(width=width, height=height)
    return {'synthetic_source': source, 'recorder': {'output': str(bag)}}


def run(args: argparse.Namespace) -> int:
    from anon_ros.commands.run import resolve_config
    from anon_ros.demo import DemoMonitor, write_preview, write_summary
    from anon_ros.graph import load_graph
    from anon_ros.runner import GraphRunner

    out: Path = args.out
    bag = out / 'bag'
    try:
        graph = load_graph(resolve_config(args.config))
        overrides = _overrides(args, bag)
        overrides = {k: v for k, v in overrides.items() if any(n.name == k for n in graph.nodes)}
        if bag.exists():
            shutil.rmtree(bag)  # the recorder refuses to overwrite; the demo's own output is ours to replace
        out.mkdir(parents=True, exist_ok=True)
        runner = GraphRunner(graph, overrides)
        runner.start()
    except AnonRosError as err:
        print(f'anon-ros demo: {err}', file=sys.stderr)
        return 2
    monitor = DemoMonitor(context=runner.context)
    assert runner.executor is not None
    runner.executor.add_node(monitor)
    source = next(n for n in runner.nodes if n.get_name() == 'synthetic_source')
    rate = float(source.get_parameter('rate').value)
    print(f'anon-ros demo: {args.duration:g} s of synthetic RGB-D + speech through {graph.path.name} -> {out}',
          file=sys.stderr)
    start = time.monotonic()
    last = 0.0
    stopping_at: float | None = None
    try:
        while runner.context.ok():
            runner.executor.spin_once(timeout_sec=0.1)
            now = time.monotonic()
            if now - last >= 1.0:
                last = now
                print(f'[{now - start:5.1f} s] {monitor.progress()}', file=sys.stderr, flush=True)
            if stopping_at is None and source.finished.is_set():
                stopping_at = now + GRACE_S
            if stopping_at is not None and now >= stopping_at:
                break
    except KeyboardInterrupt:
        print('anon-ros demo: interrupted; writing what was recorded', file=sys.stderr)
    elapsed = min(time.monotonic() - start, args.duration)
    runner.executor.remove_node(monitor)
    runner.shutdown()
    monitor.destroy_node()

    summary = monitor.summary(elapsed)
    summary['outputs'] = {'bag': str(bag) if bag.exists() else None}
    try:
        summary['outputs']['preview'] = str(write_preview(monitor.record, rate, out / 'preview.mp4'))
    except AnonRosError as err:
        print(f'anon-ros demo: no preview: {err}', file=sys.stderr)
        summary['outputs']['preview'] = None
    write_summary(summary, out / 'summary.json')
    _print_summary(summary, out)
    heads = summary['heads']
    return 0 if summary['frames']['anonymized'] and heads['frames_with_raw_head_pixels'] == 0 else 1


def _print_summary(s: dict[str, Any], out: Path) -> None:
    f, h, lat, a = s['frames'], s['heads'], s['latency_ms'], s['audio']
    print(
        f"\nanon-ros demo: {s['duration_s']:.1f} s\n"
        f"  frames: {f['published_raw']} published, {f['anonymized']} anonymized ({f['anonymized_fps']:.1f} fps), "
        f"{f['checked_against_ground_truth']} checked against ground truth\n"
        f"  heads: {h['covered_fraction']:.2%} of {h['ground_truth_head_pixels']} ground-truth head pixels anonymized; "
        f"frames with any raw head pixel: {h['frames_with_raw_head_pixels']}\n"
        f"  latency capture -> anonymized: image p50 {lat['image_capture_to_anonymized']['p50']:.0f} ms, "
        f"p95 {lat['image_capture_to_anonymized']['p95']:.0f} ms; audio p50 "
        f"{lat['audio_capture_to_anonymized']['p50']:.0f} ms, p95 {lat['audio_capture_to_anonymized']['p95']:.0f} ms\n"
        f"  audio: {a['raw_s']:.1f} s in, {a['anonymized_s']:.1f} s anonymized\n"
        f"  outputs: {out}/ (summary.json, preview.mp4, bag/)",
        file=sys.stderr,
    )
