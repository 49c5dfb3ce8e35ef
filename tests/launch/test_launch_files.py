"""Every launch file parses, loads a graph and parameter file that exist, and names executables that exist.

launch / launch_ros cannot be installed on these machines (they come with a full ROS 2 install), so the launch files
are checked in two ways: statically with ``ast``, and by calling ``generate_launch_description()`` with stand-ins
for the ``launch`` and ``launch_ros`` modules that record what would be launched. Where launch_ros *is* importable,
the real modules are used as well (test_with_real_launch_ros).
"""

from __future__ import annotations

import ast
import importlib.util
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from anon_ros.graph import load_graph

ROOT = Path(__file__).resolve().parents[2]
LAUNCH_FILES = sorted((ROOT / 'launch').glob('*.launch.py'))
REQUIRED = {'carla', 'sensors', 'record', 'demo'}
ALLOWED_IMPORTS = {'pathlib', 'ament_index_python.packages', 'launch', 'launch.actions', 'launch.substitutions',
                   'launch_ros.actions', 'anon_ros.graph', 'anon_ros.launch_graph'}


def _setup_nodes() -> dict[str, str]:
    """setup.py's NODES dict (executable -> 'module:function'), read without running setup.py."""
    tree = ast.parse((ROOT / 'setup.py').read_text())
    for stmt in tree.body:
        target = getattr(stmt, 'target', None) or (getattr(stmt, 'targets', None) or [None])[0]
        if isinstance(target, ast.Name) and target.id == 'NODES':
            return ast.literal_eval(stmt.value)  # type: ignore[attr-defined]
    raise AssertionError('setup.py defines no NODES dict')


def _name(path: Path) -> str:
    return path.name.removesuffix('.launch.py')


def test_the_required_launch_files_exist() -> None:
    assert {_name(p) for p in LAUNCH_FILES} >= REQUIRED


@pytest.mark.parametrize('path', LAUNCH_FILES, ids=_name)
def test_launch_file_parses_and_only_loads_yaml(path: Path) -> None:
    tree = ast.parse(path.read_text(), filename=str(path))
    imports = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imports |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert imports <= ALLOWED_IMPORTS, f'{path.name} imports {sorted(imports - ALLOWED_IMPORTS)}: launch files only load YAML'
    functions = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert functions == {'generate_launch_description'}
    graphs = [n.value.value for n in tree.body if isinstance(n, ast.Assign) and isinstance(n.value, ast.Constant)
              and isinstance(n.value.value, str) and n.value.value.endswith('.graph.yaml')]
    assert graphs == [f'{_name(path)}.graph.yaml']
    assert (ROOT / 'config' / graphs[0]).is_file()


class _Recorder:
    """Stand-in for a launch action class: records its keyword arguments."""

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def __call__(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return {'kind': self.kind, 'args': args, **kwargs}


def _stub_modules(monkeypatch: pytest.MonkeyPatch) -> None:
    stubs = {
        'launch': {'LaunchDescription': _Recorder('LaunchDescription')},
        'launch.actions': {'DeclareLaunchArgument': _Recorder('DeclareLaunchArgument')},
        'launch.substitutions': {'LaunchConfiguration': _Recorder('LaunchConfiguration')},
        'launch_ros': {},
        'launch_ros.actions': {'Node': _Recorder('Node')},
        'ament_index_python.packages': {'get_package_share_directory': lambda pkg: str(ROOT)},
    }
    for name, attrs in stubs.items():
        module = types.ModuleType(name)
        module.__dict__.update(attrs)
        monkeypatch.setitem(sys.modules, name, module)


def _load(path: Path) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(f'launch_file_{_name(path)}', path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize('path', LAUNCH_FILES, ids=_name)
def test_launch_file_names_existing_executables_and_config(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _stub_modules(monkeypatch)
    description = _load(path).generate_launch_description()
    entities = description['args'][0]
    declared = [e for e in entities if e['kind'] == 'DeclareLaunchArgument']
    nodes = [e for e in entities if e['kind'] == 'Node']
    assert len(declared) == 1 and Path(declared[0]['default_value']).is_file()
    assert Path(declared[0]['default_value']) == ROOT / 'config' / f'{_name(path)}.yaml'
    assert nodes, f'{path.name} launches no node'
    # What launch starts is exactly the graph `anon-ros run` starts.
    graph = load_graph(ROOT / 'config' / f'{_name(path)}.graph.yaml')
    assert [(n['package'], n['executable'], n['name']) for n in nodes] == [
        (s.package, s.executable, s.name) for s in graph.nodes
    ]
    assert [n['remappings'] for n in nodes] == [list(s.remappings) for s in graph.nodes]
    setup_nodes = _setup_nodes()
    ours = [n['executable'] for n in nodes if n['package'] == 'anon_ros']
    missing = [e for e in ours if e not in setup_nodes]
    assert not missing, f'{path.name}: executables {missing} are not console scripts in setup.py NODES'
    for exe in ours:
        module = setup_nodes[exe].split(':')[0]
        assert importlib.util.find_spec(module) is not None, f'{exe}: module {module} does not exist'


@pytest.mark.parametrize('graph_file', sorted((ROOT / 'config').glob('*.graph.yaml')), ids=lambda p: p.name)
def test_parameter_files_are_valid_ros_parameter_files(graph_file: Path) -> None:
    """rcl itself parses each graph's parameter file (a malformed one would stop every node under launch)."""
    import rclpy
    from rclpy.context import Context
    from rclpy.node import Node

    graph = load_graph(graph_file)
    context = Context()
    rclpy.init(context=context)
    try:
        for spec in graph.nodes:
            node = Node('probe', context=context, cli_args=spec.ros_args(graph.parameters))
            assert node.get_name() == spec.name
            node.destroy_node()
    finally:
        rclpy.shutdown(context=context)


@pytest.mark.skipif(importlib.util.find_spec('launch_ros') is None, reason='launch_ros is not installed here')
@pytest.mark.parametrize('path', LAUNCH_FILES, ids=_name)
def test_with_real_launch_ros(path: Path) -> None:
    from launch_ros.actions import Node

    from launch import LaunchDescription

    description = _load(path).generate_launch_description()
    assert isinstance(description, LaunchDescription)
    graph = load_graph(ROOT / 'config' / f'{_name(path)}.graph.yaml')
    assert len([e for e in description.entities if isinstance(e, Node)]) == len(graph.nodes)
