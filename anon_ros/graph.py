"""Node graphs: which nodes a configuration runs and how their topics are wired, read from ``*.graph.yaml``.

One source of truth for both ways of starting a configuration, so they cannot drift:

* ``launch/<name>.launch.py`` (full ROS 2 installs, launch_ros) loads ``config/<name>.graph.yaml`` with
  :func:`load_graph` and turns each entry into a ``launch_ros.actions.Node``;
* ``anon-ros run config/<name>.yaml`` (no launch_ros needed) loads the same file and runs the same nodes in one
  process (:mod:`anon_ros.runner`).

A graph file names the parameter file (the usual ``/**/node_name:`` + ``ros__parameters:`` YAML, relative to the
graph file) and lists the nodes::

    parameters: demo.yaml
    nodes:
      - executable: synthetic_source        # a console script of `package` (setup.py NODES)
        name: synthetic_source              # optional, default: the executable
        package: anon_ros                   # optional, default: anon_ros
        namespace: ''                       # optional
        remappings:                         # optional: the node's relative topic -> the graph's topic
          image: camera/image_raw

The parameter file stays a plain ROS parameter file (rcl rejects unknown top-level keys in it), which is why the
graph lives beside it rather than inside it. No rclpy, no launch here: plain YAML and dataclasses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from anon_ros.core.errors import AnonRosError

GRAPH_SUFFIX = '.graph.yaml'
_NAME = re.compile(r'^[A-Za-z][A-Za-z0-9_]*$')
_TOPIC = re.compile(r'^(/|~/)?[A-Za-z_][A-Za-z0-9_]*(/[A-Za-z_][A-Za-z0-9_]*)*$')
_NODE_KEYS = {'executable', 'name', 'package', 'namespace', 'remappings'}


class GraphError(AnonRosError, ValueError):
    """A graph file is missing or malformed; the message names the file and the entry."""


@dataclass(frozen=True)
class NodeSpec:
    """One node of a graph: what to run, under which name, with which topic remappings."""

    executable: str
    name: str
    package: str = 'anon_ros'
    namespace: str = ''
    remappings: tuple[tuple[str, str], ...] = ()

    def ros_args(self, parameters: Path | None = None) -> list[str]:
        """The node's ``--ros-args``: name, namespace, parameter file and remappings, as ``ros2 run`` would pass."""
        args = ['--ros-args', '-r', f'__node:={self.name}']
        if self.namespace:
            args += ['-r', f'__ns:={"/" + self.namespace.lstrip("/")}']  # rcl wants it absolute, as launch makes it
        if parameters is not None:
            args += ['--params-file', str(parameters)]
        for src, dst in self.remappings:
            args += ['-r', f'{src}:={dst}']
        return args


@dataclass(frozen=True)
class Graph:
    """A parsed graph file: its path, the resolved parameter file and the nodes."""

    path: Path
    parameters: Path
    nodes: tuple[NodeSpec, ...]

    def node(self, name: str) -> NodeSpec:
        for spec in self.nodes:
            if spec.name == name:
                return spec
        msg = f'{self.path}: no node named {name!r}; nodes: {[n.name for n in self.nodes]}'
        raise GraphError(msg)


def graph_path(config: str | Path) -> Path:
    """The graph file of a configuration: ``x.graph.yaml`` itself, or ``x.graph.yaml`` beside ``x.yaml``."""
    path = Path(config)
    if path.name.endswith(GRAPH_SUFFIX):
        return path
    if path.suffix in ('.yaml', '.yml'):
        return path.with_name(path.name[: -len(path.suffix)] + GRAPH_SUFFIX)
    msg = f'{config}: expected a configuration YAML (config/<name>.yaml) or its graph file (<name>{GRAPH_SUFFIX})'
    raise GraphError(msg)


def _require(cond: bool, where: str, what: str) -> None:
    if not cond:
        msg = f'{where}: {what}'
        raise GraphError(msg)


def _node_spec(entry: Any, where: str) -> NodeSpec:
    _require(isinstance(entry, dict), where, f'expected a mapping with an "executable", got {entry!r}')
    unknown = sorted(set(entry) - _NODE_KEYS)
    _require(not unknown, where, f'unknown keys {unknown}; allowed: {sorted(_NODE_KEYS)}')
    executable = entry.get('executable')
    _require(isinstance(executable, str) and bool(_NAME.match(executable)), where,
             f'"executable" must be an executable name, got {executable!r}')
    name = entry.get('name', executable)
    _require(isinstance(name, str) and bool(_NAME.match(name)), where, f'"name" must be a node name, got {name!r}')
    package = entry.get('package', 'anon_ros')
    _require(isinstance(package, str) and bool(_NAME.match(package)), where, f'bad "package" {package!r}')
    namespace = entry.get('namespace', '') or ''
    _require(isinstance(namespace, str) and (not namespace or bool(_TOPIC.match(namespace))), where,
             f'bad "namespace" {namespace!r}')
    remaps = entry.get('remappings', {}) or {}
    _require(isinstance(remaps, dict), where, f'"remappings" must map topic -> topic, got {remaps!r}')
    pairs: list[tuple[str, str]] = []
    for src, dst in remaps.items():
        _require(isinstance(src, str) and isinstance(dst, str) and bool(_TOPIC.match(src)) and bool(_TOPIC.match(dst)),
                 where, f'remapping {src!r}: {dst!r} is not topic: topic')
        pairs.append((src, dst))
    return NodeSpec(executable=executable, name=name, package=package, namespace=namespace, remappings=tuple(pairs))


def load_graph(config: str | Path) -> Graph:
    """Read and validate the graph of ``config`` (``x.yaml`` or ``x.graph.yaml``); see the module docstring."""
    path = graph_path(config)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as err:
        msg = f'cannot read graph file {path}: {err}'
        raise GraphError(msg) from err
    except yaml.YAMLError as err:
        msg = f'{path} is not valid YAML: {err}'
        raise GraphError(msg) from err
    where = str(path)
    _require(isinstance(data, dict), where, 'expected a mapping with "parameters" and "nodes"')
    unknown = sorted(set(data) - {'parameters', 'nodes'})
    _require(not unknown, where, f'unknown top-level keys {unknown}; allowed: parameters, nodes')
    params = data.get('parameters')
    _require(isinstance(params, str) and bool(params), where, f'"parameters" must name a YAML file, got {params!r}')
    parameters = (path.parent / params).resolve()
    _require(parameters.is_file(), where, f'parameter file {parameters} does not exist')
    entries = data.get('nodes')
    _require(isinstance(entries, list) and bool(entries), where, '"nodes" must be a non-empty list')
    nodes = tuple(_node_spec(e, f'{where}: nodes[{i}]') for i, e in enumerate(entries))
    names = [(n.namespace, n.name) for n in nodes]
    dupes = sorted({f'{ns}/{name}' for ns, name in names if names.count((ns, name)) > 1})
    _require(not dupes, where, f'node names must be unique, repeated: {dupes}')
    return Graph(path=path.resolve(), parameters=parameters, nodes=nodes)
