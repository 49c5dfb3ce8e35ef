"""Run a node graph (``config/<name>.graph.yaml``) in one process, where launch_ros is not available.

Every node of the graph is built in one rclpy context and spun by one MultiThreadedExecutor. Each node gets the
``--ros-args`` that launch would give it (``NodeSpec.ros_args``): its name, namespace, the graph's parameter file
(rcl itself applies the ``/**/node_name:`` blocks, exactly as under launch) and its remappings. Explicit
``overrides`` (e.g. from ``anon-ros run -p node.param=value``) become ``parameter_overrides`` and win over the file.

An executable is found as launch would find it: the ``console_scripts`` entry point of that name in the anon_ros
distribution (setup.py NODES), falling back to the module ``anon_ros.nodes.<executable>`` or ``<executable>.node``.
The node class is the module's ``NODE_CLASS`` if it defines one, else the one rclpy Node subclass it defines.
Node classes take ``**kwargs`` for rclpy's Node (context, cli_args, parameter_overrides).

Nodes of other packages (e.g. a camera's C++ driver) cannot be hosted in this process; they are logged with the
``ros2 run`` command that starts them with the same name, parameters and remappings.

Shutdown: Ctrl-C or SIGTERM (rclpy's signal handlers shut the context down), or every node that has a
``finished`` event (e.g. a source with a ``duration``) having set it. Nodes are destroyed in reverse order.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import signal
import threading
from collections.abc import Mapping
from types import ModuleType
from typing import Any

import rclpy
from rclpy.context import Context
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.signals import SignalHandlerOptions

from anon_ros.core.errors import AnonRosError
from anon_ros.graph import Graph, GraphError, NodeSpec

DISTRIBUTION = 'anon_ros'


def _entry_point_module(executable: str) -> str | None:
    try:
        entry_points = importlib.metadata.distribution(DISTRIBUTION).entry_points
    except importlib.metadata.PackageNotFoundError:
        return None
    for ep in entry_points:
        if ep.group == 'console_scripts' and ep.name == executable:
            return ep.module
    return None


def _import(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as err:
        if err.name is not None and (name == err.name or name.startswith(f'{err.name}.')):
            return None  # the module itself is absent; a missing dependency inside it is a real error
        raise


def node_class(spec: NodeSpec) -> type[Node]:
    """The rclpy Node class that ``spec.executable`` runs (see the module docstring)."""
    if spec.package != DISTRIBUTION:
        msg = (f'node {spec.name!r}: executable {spec.executable!r} of package {spec.package!r} cannot run inside '
               f'`anon-ros run` (only anon_ros Python nodes can); start it with ros2 run / launch')
        raise GraphError(msg)
    candidates = [m for m in (_entry_point_module(spec.executable),) if m]
    candidates += [f'anon_ros.nodes.{spec.executable}', f'{spec.executable}.node']
    module = None
    for name in candidates:
        module = _import(name)
        if module is not None:
            break
    if module is None:
        msg = (f'node {spec.name!r}: no executable {spec.executable!r} in anon_ros (looked for a console_scripts '
               f'entry point and the modules {candidates[-2:]}); is it in setup.py NODES and is anon_ros installed?')
        raise GraphError(msg)
    explicit = getattr(module, 'NODE_CLASS', None)
    if explicit is not None:
        return explicit
    classes = [
        obj for obj in vars(module).values()
        if inspect.isclass(obj) and issubclass(obj, Node) and obj.__module__ == module.__name__
    ]
    if len(classes) != 1:
        msg = (f'node {spec.name!r}: module {module.__name__} defines {len(classes)} rclpy Node classes '
               f'({[c.__name__ for c in classes]}); define NODE_CLASS there to say which one runs')
        raise GraphError(msg)
    return classes[0]


def _overrides(values: Mapping[str, Any]) -> list[Parameter]:
    return [Parameter(name, value=value) for name, value in values.items()]


class _DrainingExecutor(MultiThreadedExecutor):
    """rclpy (Kilted) destroys the executor's guard condition before its thread pool has run the callbacks already
    handed to it; those then fail ('cannot use Destroyable because destruction was requested') and are logged as
    exceptions never retrieved. Let the pool finish them first."""

    def shutdown(self, timeout_sec: float | None = None, *, wait_for_threads: bool = True) -> bool:
        pool = getattr(self, '_executor', None)  # the ThreadPoolExecutor (rclpy internals, pinned version)
        if pool is not None and wait_for_threads:
            pool.shutdown(wait=True)
        return super().shutdown(timeout_sec, wait_for_threads=wait_for_threads)


class GraphRunner:
    """Build every node of ``graph`` in one context and spin them on one MultiThreadedExecutor.

    ``overrides``: node name -> {parameter: value}, applied over the parameter file. ``signals``: stop on SIGINT and
    SIGTERM (the CLI does; tests that run a graph in a thread must not). The handlers only end the spin: nodes are
    destroyed while the context is still valid (rclpy's own handlers shut it down at once, and callbacks still
    running then fail to publish), and the context is shut down last.
    """

    def __init__(
        self,
        graph: Graph,
        overrides: Mapping[str, Mapping[str, Any]] | None = None,
        *,
        domain_id: int | None = None,
        num_threads: int | None = None,
        signals: bool = True,
    ) -> None:
        self.graph = graph
        self.overrides = {k: dict(v) for k, v in (overrides or {}).items()}
        unknown = sorted(set(self.overrides) - {n.name for n in graph.nodes})
        if unknown:
            msg = f'parameter overrides for nodes not in {graph.path}: {unknown}; nodes: {[n.name for n in graph.nodes]}'
            raise GraphError(msg)
        # Resolve every class before starting anything, so a typo fails fast and starts nothing. Nodes of other
        # packages (a camera driver) cannot run in this process: they are listed, to be started separately.
        self.classes = [(spec, node_class(spec)) for spec in graph.nodes if spec.package == DISTRIBUTION]
        self.external = [spec for spec in graph.nodes if spec.package != DISTRIBUTION]
        self.context = Context()
        self._domain_id = domain_id
        self._num_threads = num_threads
        self._signals = signals
        self.nodes: list[Node] = []
        self.executor: MultiThreadedExecutor | None = None
        self._stop = threading.Event()
        self._previous_handlers: dict[int, Any] = {}

    def start(self) -> None:
        """Initialise the context and build the nodes (in graph order); on a failure destroy what was built."""
        kwargs: dict[str, Any] = {'context': self.context}
        if self._domain_id is not None:
            kwargs['domain_id'] = self._domain_id
        kwargs['signal_handler_options'] = SignalHandlerOptions.NO
        rclpy.init(**kwargs)
        if self._signals:
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous_handlers[sig] = signal.signal(sig, lambda *_: self.stop())
        self.executor = _DrainingExecutor(num_threads=self._num_threads, context=self.context)
        try:
            for spec, cls in self.classes:
                node = cls(
                    context=self.context,
                    cli_args=spec.ros_args(self.graph.parameters),
                    parameter_overrides=_overrides(self.overrides.get(spec.name, {})),
                )
                self.nodes.append(node)
                self.executor.add_node(node)
        except BaseException:
            self.shutdown()
            raise

    def _all_finished(self) -> bool:
        events = [e for e in (getattr(n, 'finished', None) for n in self.nodes) if isinstance(e, threading.Event)]
        return bool(events) and all(e.is_set() for e in events)

    def spin(self) -> None:
        """Spin until the context shuts down (Ctrl-C, SIGTERM), ``stop()`` is called, or every source finished."""
        assert self.executor is not None, 'call start() first'
        try:
            while self.context.ok() and not self._stop.is_set() and not self._all_finished():
                self.executor.spin_once(timeout_sec=0.1)
        except (KeyboardInterrupt, ExternalShutdownException):
            pass

    def stop(self) -> None:
        """Ask ``spin`` to return (thread-safe)."""
        self._stop.set()

    def shutdown(self) -> None:
        """Destroy the nodes (last built first), stop the executor and shut the context down. Idempotent."""
        if self.executor is not None:
            for node in reversed(self.nodes):
                self.executor.remove_node(node)
            self.executor.shutdown(timeout_sec=2.0)
        for node in reversed(self.nodes):
            node.destroy_node()
        self.nodes.clear()
        rclpy.try_shutdown(context=self.context)
        for sig, handler in self._previous_handlers.items():
            signal.signal(sig, handler)
        self._previous_handlers.clear()

    def run(self) -> int:
        """start, spin, shutdown; 0 on a clean stop, 2 when a node cannot start (logged with the reason)."""
        logger = rclpy.logging.get_logger('anon_ros.runner')
        try:
            self.start()
        except AnonRosError as err:
            logger.fatal(f'cannot start {self.graph.path.name}: {err}')
            return 2
        logger.info(f'running {self.graph.path.name}: {", ".join(n.get_fully_qualified_name() for n in self.nodes)}')
        for spec in self.external:
            logger.warning(
                f'not started here (not an anon_ros Python node): {spec.package}/{spec.executable} as '
                f'{spec.namespace.rstrip("/")}/{spec.name}; start it yourself: ros2 run {spec.package} '
                f'{spec.executable} {" ".join(spec.ros_args(self.graph.parameters))}'
            )
        try:
            self.spin()
        finally:
            self.shutdown()
        logger.info('stopped')
        return 0
