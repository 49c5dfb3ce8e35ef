"""The CARLA actor lifecycle against a fake carla module and client.

No CARLA server can run on these machines, so only the server is mocked: ``FakeCarla`` stands in for the ``carla``
module (Client, Transform, Location, Rotation) and its client/world/actors record what the session asks for. The
images the fake cameras deliver are real CARLA-format BGRA buffers. One test uses the real ``carla`` package (when
installed) against a port where no server listens.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image

from anon_ros.conversions import image_to_array
from anon_ros.testing.ros_graph import wait_until
from carla_bridge.conversions import encode_depth, encode_rgb, encode_tags
from carla_bridge.errors import CarlaConnectionError, CarlaSessionError
from carla_bridge.session import BridgeConfig, CarlaSession, connect

W, H = 16, 16


@dataclass
class Settings:
    synchronous_mode: bool = False
    fixed_delta_seconds: float | None = None


@dataclass
class Blueprint:
    id: str
    attributes: dict[str, str] = field(default_factory=dict)

    def has_attribute(self, name: str) -> bool:
        return name in ('role_name', 'is_invincible', 'image_size_x', 'image_size_y', 'fov', 'sensor_tick')

    def set_attribute(self, name: str, value: str) -> None:
        self.attributes[name] = value


class Library:
    def __init__(self, world: FakeWorld) -> None:
        self.world = world

    def filter(self, pattern: str) -> list[Blueprint]:
        prefix = pattern.rstrip('*')
        return [Blueprint(i) for i in ('vehicle.tesla.model3', 'walker.pedestrian.0001', 'walker.pedestrian.0002')
                if i.startswith(prefix)]

    def find(self, blueprint_id: str) -> Blueprint:
        if blueprint_id in self.world.missing_blueprints:
            raise IndexError(f'blueprint {blueprint_id} not found')
        return Blueprint(blueprint_id)


class Actor:
    ids = itertools.count(100)

    def __init__(self, world: FakeWorld, blueprint: Blueprint, parent: Actor | None) -> None:
        self.id = next(self.ids)
        self.world = world
        self.type_id = blueprint.id
        self.attributes = dict(blueprint.attributes)
        self.parent = parent
        self.alive = True
        self.callback: Any = None
        self.started = False

    def destroy(self) -> bool:
        if self.id in self.world.undestroyable:
            raise RuntimeError('actor is gone')
        assert self.alive
        if self.parent is not None:
            assert self.parent.alive, f'{self.type_id} destroyed after its parent {self.parent.type_id}'
        self.alive = False
        self.world.destroyed.append(self)
        return True

    # sensors
    def listen(self, callback: Any) -> None:
        self.callback = callback

    def stop(self) -> None:
        self.callback = None
        self.started = False

    # vehicles, walker controllers
    def set_autopilot(self, enabled: bool, port: int) -> None:
        self.autopilot = (enabled, port)

    def start(self) -> None:
        assert self.world.frame > 0, 'walker controllers must be started after a tick'
        self.started = True

    def go_to_location(self, location: Any) -> None:
        self.target = location

    def set_max_speed(self, speed: float) -> None:
        self.speed = speed


@dataclass
class FakeImage:
    frame: int
    timestamp: float
    raw_data: bytes


class FakeWorld:
    def __init__(self) -> None:
        self.settings = Settings()
        self.applied: list[Settings] = []
        self.actors: list[Actor] = []
        self.destroyed: list[Actor] = []
        self.frame = 0
        self.undestroyable: set[int] = set()
        self.missing_blueprints: set[str] = set()
        self.fail_spawn_of: str | None = None
        self.silent_sensor: str | None = None

    def get_settings(self) -> Settings:
        return Settings(self.settings.synchronous_mode, self.settings.fixed_delta_seconds)

    def apply_settings(self, settings: Settings) -> None:
        self.settings = Settings(settings.synchronous_mode, settings.fixed_delta_seconds)
        self.applied.append(self.settings)

    def get_blueprint_library(self) -> Library:
        return Library(self)

    def get_map(self) -> Any:
        return type('Map', (), {'get_spawn_points': lambda _self: ['occupied', 'free']})()

    def get_random_location_from_navigation(self) -> Any:
        return ('nav', self.frame)

    def try_spawn_actor(self, blueprint: Blueprint, transform: Any) -> Actor | None:
        if transform == 'occupied':
            return None
        return self.spawn_actor(blueprint, transform)

    def spawn_actor(self, blueprint: Blueprint, transform: Any, attach_to: Actor | None = None) -> Actor:
        if blueprint.id == self.fail_spawn_of:
            raise RuntimeError(f'spawn of {blueprint.id} failed')
        actor = Actor(self, blueprint, attach_to)
        self.actors.append(actor)
        return actor

    def tick(self) -> int:
        assert self.settings.synchronous_mode
        self.frame += 1
        t = self.frame * (self.settings.fixed_delta_seconds or 0.0)
        for a in self.actors:
            if a.callback is None or a.type_id == self.silent_sensor:
                continue
            kind = a.type_id.removeprefix('sensor.camera.')
            h, w = int(a.attributes['image_size_y']), int(a.attributes['image_size_x'])
            if kind == 'rgb':
                raw = encode_rgb(np.full((h, w, 3), (self.frame, 2, 3), np.uint8))
            elif kind == 'depth':
                raw = encode_depth(np.full((h, w), 10.0 * self.frame, np.float32))
            else:
                tags = np.zeros((h, w), np.uint8)
                tags[: h // 2] = 12
                raw = encode_tags(tags)
            a.callback(FakeImage(self.frame - 1, t, b'stale'))  # a late image of the previous step is skipped
            a.callback(FakeImage(self.frame, t, raw.tobytes()))
        return self.frame

    @property
    def alive(self) -> list[Actor]:
        return [a for a in self.actors if a.alive]


class TrafficManager:
    def __init__(self) -> None:
        self.sync: list[bool] = []

    def set_synchronous_mode(self, on: bool) -> None:
        self.sync.append(on)

    def set_random_device_seed(self, seed: int) -> None:
        self.seed = seed

    def get_port(self) -> int:
        return 8000


class FakeClient:
    def __init__(self, host: str, port: int, world: FakeWorld | None = None, reachable: bool = True) -> None:
        self.host, self.port = host, port
        self.world = world or FakeWorld()
        self.traffic_manager = TrafficManager()
        self.reachable = reachable
        self.timeout: float | None = None

    def set_timeout(self, seconds: float) -> None:
        self.timeout = seconds

    def get_server_version(self) -> str:
        if not self.reachable:
            raise RuntimeError(f'time-out of {self.timeout * 1000:.0f}ms while waiting for the simulator')
        return '0.9.16'

    def get_client_version(self) -> str:
        return '0.9.16'

    def get_world(self) -> FakeWorld:
        return self.world

    def get_trafficmanager(self) -> TrafficManager:
        return self.traffic_manager


class FakeCarla:
    """The parts of the ``carla`` module the session uses."""

    def __init__(self, world: FakeWorld | None = None, reachable: bool = True) -> None:
        self.world = world or FakeWorld()
        self.reachable = reachable
        self.clients: list[FakeClient] = []

    def Client(self, host: str, port: int) -> FakeClient:  # noqa: N802 - carla's name
        client = FakeClient(host, port, self.world, self.reachable)
        self.clients.append(client)
        return client

    @staticmethod
    def Transform(location: Any = None, rotation: Any = None) -> tuple:  # noqa: N802
        return ('T', location, rotation)

    @staticmethod
    def Location(x: float = 0.0, y: float = 0.0, z: float = 0.0) -> tuple:  # noqa: N802
        return ('L', x, y, z)

    @staticmethod
    def Rotation(pitch: float = 0.0, yaw: float = 0.0, roll: float = 0.0) -> tuple:  # noqa: N802
        return ('R', pitch, yaw, roll)


CONFIG = BridgeConfig(width=W, height=H, n_walkers=3, fixed_delta_seconds=0.05, sensor_timeout_s=0.5)


def _session(carla: FakeCarla, config: BridgeConfig = CONFIG) -> CarlaSession:
    return CarlaSession(connect(config, carla), config, carla)


def test_lifecycle_spawns_ticks_and_cleans_up() -> None:
    carla = FakeCarla()
    world = carla.world
    with _session(carla) as session:
        assert world.settings == Settings(True, 0.05)
        kinds = [a.type_id for a in world.alive]
        assert kinds[:4] == ['vehicle.tesla.model3', 'sensor.camera.rgb', 'sensor.camera.depth',
                             'sensor.camera.semantic_segmentation']
        assert kinds[4:].count('controller.ai.walker') == 3
        cameras = world.alive[1:4]
        # Same pose, size and field of view, attached to the ego vehicle.
        assert all(c.parent is world.alive[0] for c in cameras)
        assert {tuple(sorted(c.attributes.items())) for c in cameras} == {
            (('fov', '90.0'), ('image_size_x', str(W)), ('image_size_y', str(H)), ('sensor_tick', '0.0'))}
        assert all(c.started for c in session.controllers)
        assert world.alive[0].autopilot == (True, 8000) and carla.clients[0].traffic_manager.sync == [True]
        frame = session.tick()
        second = session.tick()
        assert (frame.frame, second.frame) == (2, 3)  # one tick started the walkers
        assert second.timestamp_s == pytest.approx(0.15)
        assert len(second.rgb) == len(second.depth) == len(second.semantic) == W * H * 4
    assert world.alive == []
    assert world.settings == Settings(False, None), 'original settings restored'
    assert carla.clients[0].traffic_manager.sync == [True, False]
    # Newest first: every controller before its walker, the cameras before the vehicle (checked in destroy()).
    assert world.destroyed[-1].type_id == 'vehicle.tesla.model3'


def test_failure_half_way_through_start_destroys_what_was_spawned() -> None:
    carla = FakeCarla()
    carla.world.fail_spawn_of = 'sensor.camera.depth'
    session = _session(carla)
    with pytest.raises(RuntimeError, match='spawn of sensor.camera.depth failed'):
        session.start()
    assert carla.world.alive == [] and len(carla.world.destroyed) == 2  # the vehicle and the RGB camera
    assert carla.world.settings == Settings(False, None)


def test_ctrl_c_while_running_destroys_everything() -> None:
    carla = FakeCarla()
    with pytest.raises(KeyboardInterrupt), _session(carla) as session:
        session.tick()
        raise KeyboardInterrupt
    assert carla.world.alive == []
    assert carla.world.settings == Settings(False, None)


def test_an_actor_that_fails_to_go_does_not_stop_the_cleanup() -> None:
    carla = FakeCarla()
    session = _session(carla)
    session.start()
    stuck = carla.world.alive[2]
    carla.world.undestroyable.add(stuck.id)
    session.close()
    assert carla.world.alive == [stuck]
    session.close()  # idempotent
    assert session.actors == []


def test_a_camera_that_delivers_nothing_is_an_error() -> None:
    carla = FakeCarla()
    carla.world.silent_sensor = 'sensor.camera.semantic_segmentation'
    with _session(carla) as session, pytest.raises(CarlaSessionError, match='semantic_segmentation delivered no'):
        session.tick()
    assert carla.world.alive == []


def test_no_free_spawn_point_is_an_error() -> None:
    carla = FakeCarla()
    spawnless_map = type('Map', (), {'get_spawn_points': lambda _self: ['occupied']})
    carla.world.get_map = spawnless_map
    with pytest.raises(CarlaSessionError, match='could not be spawned at any of 1 spawn points'):
        _session(carla).start()


def test_unreachable_server_names_host_and_port() -> None:
    with pytest.raises(CarlaConnectionError, match=r'no CARLA server answered at sim\.local:2345 within 2 s'):
        connect(BridgeConfig(host='sim.local', port=2345, timeout_s=2.0), FakeCarla(reachable=False))


def test_unreachable_server_with_the_real_carla_package() -> None:
    pytest.importorskip('carla')
    with pytest.raises(CarlaConnectionError, match=r'no CARLA server answered at 127\.0\.0\.1:2999 within 0\.3 s'):
        connect(BridgeConfig(host='127.0.0.1', port=2999, timeout_s=0.3))


@pytest.mark.parametrize('kwargs', [{'fov': 0.0}, {'port': 0}, {'fixed_delta_seconds': 0.5}, {'n_walkers': -1}])
def test_bad_config_is_rejected(kwargs: dict[str, Any]) -> None:
    with pytest.raises(Exception, match='fov|field of view|port|fixed_delta|n_walkers'):
        BridgeConfig(**kwargs)


def test_bridge_node_publishes_decoded_frames_and_cleans_up(ros_graph) -> None:  # noqa: ANN001
    from carla_bridge.node import CarlaBridgeNode

    carla = FakeCarla()
    io = ros_graph.node('carla_test_io')
    images: list[Image] = []
    depths: list[Image] = []
    peds: list[Image] = []
    io.create_subscription(Image, 'image', images.append, 10)
    io.create_subscription(Image, 'depth', depths.append, 10)
    io.create_subscription(Image, 'ground_truth/pedestrian_mask', peds.append, 10)
    params = [Parameter('width', value=W), Parameter('height', value=H), Parameter('n_walkers', value=2)]
    node = ros_graph.add(CarlaBridgeNode(carla_module=carla, context=ros_graph.context, parameter_overrides=params))
    assert wait_until(lambda: len(images) >= 2 and len(depths) >= 2 and len(peds) >= 2, 10)
    # Frame k: RGB (k, 2, 3), depth 10 k m, the top half pedestrians; stamps are simulation time.
    rgb = image_to_array(images[0])
    k = int(rgb[0, 0, 0])
    assert rgb[0, 0].tolist() == [k, 2, 3]
    assert images[0].header.stamp.nanosec == round(k * 0.05 * 1e9) % 1_000_000_000
    depth = next(image_to_array(d) for d in depths if d.header.stamp == images[0].header.stamp)
    assert depth[0, 0] == pytest.approx(10.0 * k, abs=1e-3)
    mask = image_to_array(peds[0])
    assert (mask[: H // 2] == 255).all() and (mask[H // 2:] == 0).all()
    ros_graph.executor.remove_node(node)
    node.destroy_node()
    assert carla.world.alive == [] and carla.world.settings == Settings(False, None)
