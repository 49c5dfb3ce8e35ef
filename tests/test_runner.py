"""Node graphs (anon_ros.graph) and `anon-ros run` (anon_ros.runner) bringing a real rclpy graph up and down."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
from sensor_msgs.msg import Image

from anon_ros.graph import GraphError, NodeSpec, graph_path, load_graph
from anon_ros.runner import GraphRunner, node_class
from anon_ros.testing.ros_graph import python_process
from anon_ros_msgs.msg import AudioStamped

ROOT = Path(__file__).resolve().parent.parent


def write_video(path: Path, frames: int) -> Path:
    """A small MJPG AVI of flat frames."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'MJPG'), 20.0, (64, 48))
    for i in range(frames):
        writer.write(np.full((48, 64, 3), 40 * i, np.uint8))
    writer.release()
    return path


def write_graph(tmp_path: Path, video: Path, **source_params: object) -> Path:
    """A test configuration: synthetic source + camera source, remapped into two namespaces of topics."""
    params = {'width': 96, 'height': 64, 'rate': 10.0, 'n_people': 2, **source_params}
    lines = ['/**/synthetic_source:', '  ros__parameters:']
    lines += [f'    {k}: {v!r}' if isinstance(v, str) else f'    {k}: {str(v).lower()}' for k, v in params.items()]
    lines += ['/**/webcam:', '  ros__parameters:', f'    device: "{video}"', '    loop: true']
    (tmp_path / 'test.yaml').write_text('\n'.join(lines) + '\n')
    (tmp_path / 'test.graph.yaml').write_text(
        'parameters: test.yaml\n'
        'nodes:\n'
        '  - executable: synthetic_source\n'
        '    remappings: {image: sim/image_raw, audio: sim/audio_raw}\n'
        '  - executable: camera_source\n'
        '    name: webcam\n'
        '    remappings: {image: cam/image_raw}\n'
    )
    return tmp_path / 'test.yaml'


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write_graph(tmp_path, write_video(tmp_path / 'clip.avi', frames=4))


# --- graph files --------------------------------------------------------------------------------------------------


def test_graph_path() -> None:
    assert graph_path('config/demo.yaml') == Path('config/demo.graph.yaml')
    assert graph_path('config/demo.graph.yaml') == Path('config/demo.graph.yaml')
    with pytest.raises(GraphError, match='expected a configuration YAML'):
        graph_path('config/demo.txt')


@pytest.mark.parametrize('graph_file', sorted((ROOT / 'config').glob('*.graph.yaml')), ids=lambda p: p.name)
def test_shipped_graphs_load(graph_file: Path) -> None:
    graph = load_graph(graph_file)
    assert graph.parameters.is_file() and graph.nodes


def test_node_spec_ros_args() -> None:
    spec = NodeSpec('camera_source', 'webcam', namespace='robot', remappings=(('image', 'cam/image_raw'),))
    assert spec.ros_args(Path('/p.yaml')) == [
        '--ros-args', '-r', '__node:=webcam', '-r', '__ns:=/robot', '--params-file', '/p.yaml',
        '-r', 'image:=cam/image_raw',
    ]


@pytest.mark.parametrize(('body', 'message'), [
    ('nodes: [{executable: x}]', '"parameters" must name a YAML file'),
    ('parameters: missing.yaml\nnodes: [{executable: x}]', 'does not exist'),
    ('parameters: p.yaml\nnodes: []', '"nodes" must be a non-empty list'),
    ('parameters: p.yaml\nnodes: [{executable: x, remap: {}}]', r"nodes\[0\]: unknown keys \['remap'\]"),
    ('parameters: p.yaml\nnodes: [{executable: x, remappings: {a: "b c"}}]', 'is not topic: topic'),
    ('parameters: p.yaml\nnodes: [{executable: x}, {executable: x}]', 'node names must be unique'),
    ('parameters: p.yaml\nnodes: [{executable: x}]\nextra: 1', r"unknown top-level keys \['extra'\]"),
])
def test_malformed_graphs_are_rejected_with_the_reason(tmp_path: Path, body: str, message: str) -> None:
    (tmp_path / 'p.yaml').write_text('/**:\n  ros__parameters: {use_sim_time: false}\n')
    (tmp_path / 'g.graph.yaml').write_text(body)
    with pytest.raises(GraphError, match=message):
        load_graph(tmp_path / 'g.graph.yaml')


def test_node_classes_resolve() -> None:
    from anon_ros.nodes.microphone import MicrophoneNode
    from anon_ros.nodes.synthetic_source import SyntheticSourceNode

    assert node_class(NodeSpec('synthetic_source', 'a')) is SyntheticSourceNode
    assert node_class(NodeSpec('microphone', 'b')) is MicrophoneNode
    with pytest.raises(GraphError, match="no executable 'nope'"):
        node_class(NodeSpec('nope', 'c'))


def test_unknown_executable_starts_nothing(tmp_path: Path) -> None:
    (tmp_path / 'p.yaml').write_text('/**:\n  ros__parameters: {use_sim_time: false}\n')
    (tmp_path / 'g.graph.yaml').write_text('parameters: p.yaml\nnodes: [{executable: synthetic_source}, {executable: nope}]')
    with pytest.raises(GraphError, match="no executable 'nope'"):
        GraphRunner(load_graph(tmp_path / 'g.graph.yaml'), signals=False)


# --- running a graph ----------------------------------------------------------------------------------------------


def test_runner_in_process_brings_the_graph_up_and_down(ros_graph, config: Path) -> None:  # noqa: ANN001
    runner = GraphRunner(load_graph(config), {'synthetic_source': {'seed': 4}}, signals=False)
    runner.start()
    names = sorted(n.get_name() for n in runner.nodes)
    assert names == ['synthetic_source', 'webcam']
    source = next(n for n in runner.nodes if n.get_name() == 'synthetic_source')
    # Parameters come from the file (rcl applies the /**/ blocks), overrides on top.
    assert (source.get_parameter('width').value, source.get_parameter('seed').value) == (96, 4)
    thread = threading.Thread(target=runner.spin)
    thread.start()
    try:
        sim = ros_graph.collect('/sim/image_raw', Image, 2, timeout=15)
        cam = ros_graph.collect('/cam/image_raw', Image, 2, timeout=15)
        audio = ros_graph.collect('/sim/audio_raw', AudioStamped, 3, timeout=15)
        assert (len(sim), len(cam), len(audio)) == (2, 2, 3)
        assert (sim[0].width, sim[0].height) == (96, 64)
    finally:
        runner.stop()
        thread.join(timeout=10)
        runner.shutdown()
    assert not thread.is_alive()
    assert not runner.context.ok() and runner.nodes == []


@pytest.mark.parametrize('sig', [signal.SIGINT, signal.SIGTERM], ids=['SIGINT', 'SIGTERM'])
def test_anon_ros_run_stops_cleanly_on_signal(ros_graph, config: Path, sig: signal.Signals) -> None:  # noqa: ANN001
    with python_process(['-m', 'anon_ros.commands.run', str(config)]) as proc:
        frames = ros_graph.collect('/sim/image_raw', Image, 2, timeout=30)
        assert len(frames) == 2, 'the graph did not come up'
        os.killpg(proc.pid, sig)
        out, _ = proc.communicate(timeout=15)
    assert proc.returncode == 0, out
    assert 'running test.graph.yaml: /synthetic_source, /webcam' in out
    assert 'stopped' in out and 'Traceback' not in out
    # Nodes go down while the context is still valid, and no callback is left to fail on a destroyed handle.
    assert 'never retrieved' not in out and 'context is invalid' not in out, out


def test_anon_ros_run_ends_when_the_sources_finish(tmp_path: Path) -> None:
    config = write_graph(tmp_path, write_video(tmp_path / 'clip.avi', frames=4))
    (tmp_path / 'test.yaml').write_text((tmp_path / 'test.yaml').read_text().replace('loop: true', 'loop: false'))
    with python_process(['-m', 'anon_ros.commands.run', str(config), '-p', 'synthetic_source.duration=1.5',
                         '-p', 'synthetic_source.audio_file=none']) as proc:
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert 'finished after 1.5 s' in out and 'stopped' in out


def test_anon_ros_run_reports_a_node_that_cannot_start(tmp_path: Path) -> None:
    config = write_graph(tmp_path, tmp_path / 'missing.avi')
    with python_process(['-m', 'anon_ros.commands.run', str(config)]) as proc:
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 2, out
    assert 'cannot start test.graph.yaml' in out and 'missing.avi does not exist' in out
