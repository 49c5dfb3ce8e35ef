"""``carla_bridge``: a CARLA simulation as ROS 2 camera topics, driven step by step (synchronous mode).

Connects to a CARLA 0.9.16 server (``host``, ``port``, ``timeout``), spawns an ego vehicle with RGB, depth and
semantic-segmentation cameras of one pose, size and field of view, and ``n_walkers`` AI-controlled walkers, then
advances the simulation one ``fixed_delta_seconds`` step per timer tick (paced to real time) and publishes
(``carla_bridge.publishers``): ``image`` rgb8, ``depth`` 32FC1 metres, ``camera_info``,
``ground_truth/pedestrian_mask`` mono8, and ``/clock`` (simulation time; all stamps are simulation time).

Every actor is destroyed and the world set back to asynchronous mode when the node is destroyed (Ctrl-C, SIGTERM
or an error included). An unreachable server stops the node at start with a message naming host and port.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rclpy.node import Node
from rosgraph_msgs.msg import Clock

from anon_ros.nodes.common import ParameterError, declare, run
from carla_bridge.conversions import intrinsics_from_fov
from carla_bridge.errors import CarlaSessionError
from carla_bridge.publishers import CarlaCameraPublishers, stamp_from_ns
from carla_bridge.session import BridgeConfig, CarlaSession, connect

CLOCK_QOS_DEPTH = 10


class CarlaBridgeNode(Node):
    """Steps a CARLA world and publishes its cameras. ``carla_module`` replaces ``import carla`` (tests)."""

    def __init__(self, carla_module: Any = None, **kwargs: Any) -> None:
        super().__init__('carla_bridge', **kwargs)
        defaults = BridgeConfig()
        p: dict[str, Any] = {
            'host': declare(self, 'host', defaults.host, 'CARLA server host'),
            'port': declare(self, 'port', defaults.port, 'CARLA server RPC port', min_value=1, max_value=65535),
            'timeout_s': declare(self, 'timeout', defaults.timeout_s, 'seconds to wait for the server',
                                 min_value=0.1, max_value=600.0),
            'fixed_delta_seconds': declare(self, 'fixed_delta_seconds', defaults.fixed_delta_seconds,
                                           'simulation step, s (synchronous mode)', min_value=0.001, max_value=0.1),
            'width': declare(self, 'width', defaults.width, 'camera width, px', min_value=16, max_value=8192),
            'height': declare(self, 'height', defaults.height, 'camera height, px', min_value=16, max_value=8192),
            'fov': declare(self, 'fov', defaults.fov, 'horizontal field of view of the cameras, degrees',
                           min_value=1.0, max_value=179.0),
            'camera_x': declare(self, 'camera_x', defaults.camera_x, 'camera position ahead of the vehicle centre, m',
                                min_value=-20.0, max_value=20.0),
            'camera_z': declare(self, 'camera_z', defaults.camera_z, 'camera height above the vehicle origin, m',
                                min_value=-5.0, max_value=20.0),
            'camera_pitch': declare(self, 'camera_pitch', defaults.camera_pitch, 'camera pitch, degrees',
                                    min_value=-90.0, max_value=90.0),
            'n_walkers': declare(self, 'n_walkers', defaults.n_walkers, 'AI walkers to spawn', min_value=0,
                                 max_value=1000),
            'vehicle_filter': declare(self, 'vehicle_filter', defaults.vehicle_filter, 'ego vehicle blueprint filter'),
            'autopilot': declare(self, 'autopilot', defaults.autopilot, 'drive the ego vehicle with the traffic manager'),
            'seed': declare(self, 'seed', defaults.seed, 'random seed (spawn points, walkers)', min_value=0,
                            max_value=2**31 - 1),
        }
        frame_id = declare(self, 'frame_id', 'camera', 'header.frame_id of the camera topics')
        try:
            self.config = BridgeConfig(**p)
        except CarlaSessionError as err:
            raise ParameterError(str(err)) from err
        self.camera = CarlaCameraPublishers(
            self, intrinsics_from_fov(self.config.width, self.config.height, self.config.fov), frame_id,
        )
        self.clock_pub = self.create_publisher(Clock, '/clock', CLOCK_QOS_DEPTH)
        self.session: CarlaSession | None = None
        client = connect(self.config, carla_module)  # CarlaConnectionError names host and port
        self.session = CarlaSession(client, self.config, carla_module)
        self.session.start()
        self.frames_published = 0
        self.timer = self.create_timer(self.config.fixed_delta_seconds, self._step)
        self.get_logger().info(
            f'CARLA {self.config.host}:{self.config.port}: {len(self.session.actors)} actors, '
            f'{self.config.width}x{self.config.height} fov {self.config.fov:g}, step {self.config.fixed_delta_seconds:g} s'
        )

    def _step(self) -> None:
        if self.session is None:
            return
        try:
            frame = self.session.tick()
        except CarlaSessionError as err:
            self.get_logger().error(f'simulation step failed: {err}', throttle_duration_sec=5.0)
            return
        stamp_ns = round(frame.timestamp_s * 1e9)
        self.clock_pub.publish(Clock(clock=stamp_from_ns(stamp_ns)))
        self.camera.publish_carla(stamp_ns, frame.rgb, frame.depth, frame.semantic)
        self.frames_published += 1

    def destroy_node(self) -> None:
        timer = getattr(self, 'timer', None)
        if timer is not None:
            timer.cancel()
        session = getattr(self, 'session', None)
        if session is not None:
            session.close()
            self.session = None
        super().destroy_node()


def main(args: Sequence[str] | None = None) -> int:
    return run(CarlaBridgeNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
