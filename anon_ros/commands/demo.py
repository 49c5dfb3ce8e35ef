"""``anon-ros demo``: the embedded demo, no CARLA and no camera needed.

Runs config/demo.graph.yaml in this process (synthetic CARLA-format RGB-D video of real people with recorded speech
-> face and voice anonymizers -> recorder) for a fixed duration, with a progress line, then writes to OUT:
``bag/`` (the anonymized rosbag2 recording), ``preview.mp4`` (original left, anonymized right, anonymized speech)
and ``summary.json`` (fps, latencies, and how many ground-truth head pixels were anonymized).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import yaml

from anon_ros.core.errors import AnonRosError

GRACE_S = 3.0
"""After the source stops, how long in-flight frames and audio get to reach the monitor and the recorder."""
STARTUP_S = 2.0
"""Time the source process takes to start before its duration begins."""


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


def _param_arg(name: str, value: Any) -> str:
    """A ``-p name:=value`` override as rcl parses it (YAML: floats keep their decimal point)."""
    text = repr(value) if isinstance(value, float) else str(value).lower() if isinstance(value, bool) else str(value)
    return f'{name}:={text}'


def start_node_processes(graph: Any, overrides: dict[str, dict[str, Any]], logs: Path,
                         names: set[str] | None = None) -> list[subprocess.Popen]:
    """Start every node of ``graph`` in its own process, as launch would (``python -m <node module> --ros-args``).

    One process per node keeps the sources' timing independent of the anonymizers' load (one interpreter would
    share one GIL). Output goes to ``logs/<node>.log``.
    """
    from anon_ros.runner import node_class
    from anon_ros.testing.ros_graph import child_env

    logs.mkdir(parents=True, exist_ok=True)
    procs = []
    for spec in graph.nodes:
        if names is not None and spec.name not in names:
            continue
        module = node_class(spec).__module__
        args = [sys.executable, '-m', module, *spec.ros_args(graph.parameters)]
        for name, value in overrides.get(spec.name, {}).items():
            args += ['-p', _param_arg(name, value)]
        log = (logs / f'{spec.name}.log').open('w', encoding='utf-8')
        procs.append(subprocess.Popen(args, env=child_env(), stdout=log, stderr=subprocess.STDOUT,  # noqa: S603
                                      start_new_session=True))
    return procs


def stop_processes(procs: list[subprocess.Popen], timeout_s: float = 15.0) -> None:
    """SIGINT (nodes shut down cleanly: the recorder closes its bag), then SIGKILL what is left."""
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
    deadline = time.monotonic() + timeout_s
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def run(args: argparse.Namespace) -> int:
    import rclpy
    from rclpy.context import Context
    from rclpy.executors import MultiThreadedExecutor

    from anon_ros.commands.run import resolve_config
    from anon_ros.demo import DemoMonitor, write_preview, write_summary
    from anon_ros.graph import load_graph

    out: Path = args.out
    bag = out / 'bag'
    try:
        graph = load_graph(resolve_config(args.config))
        overrides = _overrides(args, bag)
        overrides = {k: v for k, v in overrides.items() if any(n.name == k for n in graph.nodes)}
        if bag.exists():
            shutil.rmtree(bag)  # the recorder refuses to overwrite; the demo's own output is ours to replace
        out.mkdir(parents=True, exist_ok=True)
    except AnonRosError as err:
        print(f'anon-ros demo: {err}', file=sys.stderr)
        return 2
    rate = float(overrides.get('synthetic_source', {}).get('rate') or _yaml_param(graph, 'synthetic_source', 'rate'))
    context = Context()
    rclpy.init(context=context)
    monitor = DemoMonitor(context=context)
    executor = MultiThreadedExecutor(context=context)
    executor.add_node(monitor)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    # The source starts last, once the anonymizers listen, so the stream is anonymized from its first frame.
    sources = {n.name for n in graph.nodes if n.executable == 'synthetic_source'}
    procs = start_node_processes(graph, overrides, out / 'logs', {n.name for n in graph.nodes} - sources)
    topics = monitor.topics
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and not all(
        monitor.count_publishers(monitor.resolve_topic_name(t)) for t in (topics.anonymized_image, topics.anonymized_audio)
    ):
        time.sleep(0.2)
    procs += start_node_processes(graph, overrides, out / 'logs', sources)
    print(f'anon-ros demo: {args.duration:g} s of synthetic RGB-D + speech through {graph.path.name} -> {out} '
          f'(node logs in {out / "logs"})', file=sys.stderr)
    start = time.monotonic()
    try:
        while True:
            time.sleep(1.0)
            elapsed = time.monotonic() - start
            print(f'[{elapsed:5.1f} s] {monitor.progress()}', file=sys.stderr, flush=True)
            dead = [p for p in procs if p.poll() is not None]
            if dead:
                print(f'anon-ros demo: a node exited early (exit {dead[0].returncode}); see {out / "logs"}',
                      file=sys.stderr)
                break
            if monitor.record.raw_frames and elapsed >= args.duration + STARTUP_S + GRACE_S:
                break
            if elapsed > args.duration + STARTUP_S + 60:
                print('anon-ros demo: no frames arrived; see the node logs', file=sys.stderr)
                break
    except KeyboardInterrupt:
        print('anon-ros demo: interrupted; writing what was recorded', file=sys.stderr)
    stop_processes(procs)
    elapsed = min(time.monotonic() - start, args.duration)
    executor.shutdown(timeout_sec=2.0)
    monitor.destroy_node()
    rclpy.try_shutdown(context=context)

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


def _yaml_param(graph: Any, node: str, name: str) -> Any:
    """A parameter's value in the graph's parameter file (``/**/node:`` block)."""
    data = yaml.safe_load(Path(graph.parameters).read_text(encoding='utf-8')) or {}
    for key, block in data.items():
        if key.rstrip('/').split('/')[-1] == node:
            return block.get('ros__parameters', {}).get(name)
    return None


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
