"""A real rclpy graph for tests and benchmarks: a private context, an executor in a thread, child processes.

Each ``RosGraph`` owns its own ``rclpy.Context`` so tests do not share global ROS state, and spins its nodes in a
background thread so the test body can block on ``collect``/``wait_until``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import rclpy
from rclpy.context import Context
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, qos_profile_sensor_data

from anon_ros.dds import local_dds_env


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.02) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` s passed; return its last value."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return predicate()
        time.sleep(interval)
    return True


class RosGraph:
    """rclpy nodes in a private context, spun by a MultiThreadedExecutor in a daemon thread."""

    def __init__(self, domain_id: int | None = None) -> None:
        self.context = Context()
        kwargs: dict[str, Any] = {'context': self.context}
        if domain_id is not None:
            kwargs['domain_id'] = domain_id
        rclpy.init(**kwargs)
        self.executor = MultiThreadedExecutor(num_threads=4, context=self.context)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        # The context may be shut down under the executor: the test then sees missing messages, not this thread.
        with contextlib.suppress(Exception):
            self.executor.spin()

    def add(self, node: Node) -> Node:
        self.executor.add_node(node)
        return node

    def node(self, name: str, **kwargs: Any) -> Node:
        return self.add(Node(name, context=self.context, **kwargs))

    def collect(
        self, topic: str, msg_type: type, count: int, timeout: float, qos: QoSProfile = qos_profile_sensor_data
    ) -> list[Any]:
        """Subscribe to ``topic`` and return the first ``count`` messages (fewer if ``timeout`` passes)."""
        received: list[Any] = []
        node = self.node(f'collect_{abs(hash((topic, time.monotonic_ns())))}')
        node.create_subscription(msg_type, topic, received.append, qos)
        wait_until(lambda: len(received) >= count, timeout)
        self.executor.remove_node(node)
        node.destroy_node()
        return received[:count]

    def shutdown(self) -> None:
        self.executor.shutdown(timeout_sec=2.0)
        for node in list(self.executor.get_nodes()):
            node.destroy_node()
        if self.context.ok():
            rclpy.shutdown(context=self.context)
        self._thread.join(timeout=5.0)

    def __enter__(self) -> RosGraph:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The full environment for a child process, with local DDS settings.

    The full environment matters: the ROS wheels re-exec Python with LD_LIBRARY_PATH, and a child that inherits
    their 'bootstrap complete' flag without that path cannot import rclpy.
    """
    env = local_dds_env()
    env.update(extra or {})
    env.setdefault('PYTHONUNBUFFERED', '1')
    return env


@contextmanager
def python_process(
    args: Sequence[str], extra_env: Mapping[str, str] | None = None, stop_timeout: float = 10.0
) -> Iterator[subprocess.Popen[str]]:
    """Run ``python <args>`` as a child process; on exit send SIGINT, then SIGKILL if it does not stop."""
    proc = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
        [sys.executable, *args],
        env=child_env(extra_env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=stop_timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
