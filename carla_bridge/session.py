"""A CARLA simulation session: connect, synchronous mode, ego vehicle with three cameras, walkers; clean teardown.

No rclpy here. The carla module is passed in (``carla_module``; default: ``import carla``), so the actor lifecycle
can be tested against a fake client without a simulator. Every actor is recorded the moment it exists, and
``close()`` (also run when ``start()`` fails half-way, and by ``with``) stops the sensors and walker controllers,
gives the world back its original settings (asynchronous mode) and destroys every actor in reverse spawn order
(controllers before their walkers, cameras before their vehicle), carrying on past actors that fail to go.
"""

from __future__ import annotations

import logging
import queue
import random
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from carla_bridge.conversions import intrinsics_from_fov
from carla_bridge.errors import CarlaConnectionError, CarlaSessionError

_LOG = logging.getLogger(__name__)

CAMERAS = ('rgb', 'depth', 'semantic_segmentation')
"""The three cameras, same pose, size and field of view: sensor.camera.<kind>."""


@dataclass(frozen=True)
class BridgeConfig:
    """What to connect to and what to spawn."""

    host: str = 'localhost'
    port: int = 2000
    timeout_s: float = 10.0
    fixed_delta_seconds: float = 0.05
    width: int = 1280
    height: int = 720
    fov: float = 90.0
    camera_x: float = 1.5
    camera_z: float = 1.6
    camera_pitch: float = 0.0
    n_walkers: int = 30
    vehicle_filter: str = 'vehicle.*'
    autopilot: bool = True
    seed: int = 0
    sensor_timeout_s: float = 5.0

    def __post_init__(self) -> None:
        intrinsics_from_fov(self.width, self.height, self.fov)  # validates size and field of view
        checks = (
            (0 < self.port < 65536, f'port must be in 1..65535, got {self.port}'),
            (self.timeout_s > 0, f'timeout must be positive, got {self.timeout_s}'),
            (0 < self.fixed_delta_seconds <= 0.1,
             f'fixed_delta_seconds must be in (0, 0.1] (CARLA physics needs small steps), got {self.fixed_delta_seconds}'),
            (self.n_walkers >= 0, f'n_walkers must be >= 0, got {self.n_walkers}'),
        )
        for ok, msg in checks:
            if not ok:
                raise CarlaSessionError(msg)


@dataclass(frozen=True)
class SensorFrame:
    """The three cameras' raw BGRA buffers of one simulation step."""

    frame: int
    timestamp_s: float
    rgb: bytes
    depth: bytes
    semantic: bytes


def import_carla() -> ModuleType:
    try:
        import carla
    except ImportError as err:
        msg = 'the CARLA Python API is not installed: pip install carla==0.9.16 (it must match the server version)'
        raise CarlaConnectionError(msg) from err
    return carla


def connect(config: BridgeConfig, carla_module: Any = None) -> Any:
    """A ``carla.Client`` connected to ``config.host:port``, or CarlaConnectionError saying which server is absent."""
    carla = carla_module or import_carla()
    client = carla.Client(config.host, config.port)
    client.set_timeout(config.timeout_s)
    try:
        server = client.get_server_version()
    except RuntimeError as err:
        msg = (f'no CARLA server answered at {config.host}:{config.port} within {config.timeout_s:g} s ({err}); '
               'start the simulator (./CarlaUE4.sh) or set the host and port parameters')
        raise CarlaConnectionError(msg) from err
    client_version = getattr(client, 'get_client_version', lambda: server)()
    if server != client_version:
        _LOG.warning('CARLA server %s and client %s differ; install carla==%s', server, client_version, server)
    return client


class CarlaSession:
    """Synchronous-mode simulation with an ego vehicle, three cameras and AI walkers. Use as a context manager."""

    def __init__(self, client: Any, config: BridgeConfig, carla_module: Any = None) -> None:
        self.client = client
        self.config = config
        self.carla = carla_module or import_carla()
        self.world: Any = None
        self.actors: list[Any] = []  # in spawn order
        self.sensors: dict[str, Any] = {}
        self.controllers: list[Any] = []
        self.ego: Any = None
        self._queues: dict[str, queue.Queue[Any]] = {}
        self._original_settings: Any = None
        self._traffic_manager: Any = None
        self._rng = random.Random(config.seed)

    # --- lifecycle ------------------------------------------------------------------------------------------

    def __enter__(self) -> CarlaSession:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        """Switch to synchronous mode and spawn everything; on any failure undo what was done, then re-raise."""
        try:
            self._start()
        except BaseException:
            self.close()
            raise

    def _start(self) -> None:
        self.world = self.client.get_world()
        self._original_settings = self.world.get_settings()
        settings = self.world.get_settings()
        settings.synchronous_mode = True
        settings.fixed_delta_seconds = self.config.fixed_delta_seconds
        self.world.apply_settings(settings)
        if self.config.autopilot:
            self._traffic_manager = self.client.get_trafficmanager()
            self._traffic_manager.set_synchronous_mode(True)
            self._traffic_manager.set_random_device_seed(self.config.seed)
        library = self.world.get_blueprint_library()
        self._spawn_ego(library)
        self._spawn_cameras(library)
        self._spawn_walkers(library)

    def _record(self, actor: Any) -> Any:
        self.actors.append(actor)
        return actor

    def _spawn_ego(self, library: Any) -> None:
        blueprints = list(library.filter(self.config.vehicle_filter))
        if not blueprints:
            msg = f'no vehicle blueprint matches {self.config.vehicle_filter!r}'
            raise CarlaSessionError(msg)
        blueprint = self._rng.choice(blueprints)
        if blueprint.has_attribute('role_name'):
            blueprint.set_attribute('role_name', 'ego_vehicle')
        spawn_points = list(self.world.get_map().get_spawn_points())
        self._rng.shuffle(spawn_points)
        for transform in spawn_points:
            actor = self.world.try_spawn_actor(blueprint, transform)
            if actor is not None:
                self.ego = self._record(actor)
                break
        else:
            msg = f'the ego vehicle could not be spawned at any of {len(spawn_points)} spawn points (all occupied?)'
            raise CarlaSessionError(msg)
        if self.config.autopilot:
            self.ego.set_autopilot(True, self._traffic_manager.get_port())

    def _spawn_cameras(self, library: Any) -> None:
        carla, cfg = self.carla, self.config
        pose = carla.Transform(carla.Location(x=cfg.camera_x, z=cfg.camera_z), carla.Rotation(pitch=cfg.camera_pitch))
        for kind in CAMERAS:
            blueprint = library.find(f'sensor.camera.{kind}')
            blueprint.set_attribute('image_size_x', str(cfg.width))
            blueprint.set_attribute('image_size_y', str(cfg.height))
            blueprint.set_attribute('fov', str(cfg.fov))
            blueprint.set_attribute('sensor_tick', '0.0')  # every simulation step
            sensor = self._record(self.world.spawn_actor(blueprint, pose, attach_to=self.ego))
            self.sensors[kind] = sensor
            self._queues[kind] = queue.Queue()
            sensor.listen(self._queues[kind].put)

    def _spawn_walkers(self, library: Any) -> None:
        if self.config.n_walkers == 0:
            return
        carla = self.carla
        blueprints = list(library.filter('walker.pedestrian.*'))
        controller_bp = library.find('controller.ai.walker')
        walkers = []
        for _ in range(self.config.n_walkers):
            location = self.world.get_random_location_from_navigation()
            if location is None:
                continue
            blueprint = self._rng.choice(blueprints)
            if blueprint.has_attribute('is_invincible'):
                blueprint.set_attribute('is_invincible', 'false')
            walker = self.world.try_spawn_actor(blueprint, carla.Transform(location))
            if walker is None:
                continue
            walkers.append(self._record(walker))
            controller = self._record(self.world.spawn_actor(controller_bp, carla.Transform(), attach_to=walker))
            self.controllers.append(controller)
        # Controllers only act after the server has seen them: tick once, then start them.
        self.world.tick()
        for controller in self.controllers:
            controller.start()
            controller.go_to_location(self.world.get_random_location_from_navigation())
            controller.set_max_speed(1.0 + self._rng.random())
        if len(walkers) < self.config.n_walkers:
            _LOG.warning('spawned %d of %d walkers (no free navigation point)', len(walkers), self.config.n_walkers)

    def close(self) -> None:
        """Stop sensors and controllers, restore the world's settings, destroy every actor (newest first).

        Idempotent; an actor that fails to stop or go is logged and the rest still go.
        """
        for sensor in self.sensors.values():
            _quietly(sensor.stop, 'stop sensor', sensor)
        for controller in self.controllers:
            _quietly(controller.stop, 'stop walker controller', controller)
        # As CARLA's own examples do: back to asynchronous mode first, then destroy (newest first).
        if self._traffic_manager is not None:
            _quietly(lambda: self._traffic_manager.set_synchronous_mode(False), 'release the traffic manager', None)
            self._traffic_manager = None
        if self.world is not None and self._original_settings is not None:
            _quietly(lambda: self.world.apply_settings(self._original_settings), 'restore world settings', None)
            self._original_settings = None
        while self.actors:
            actor = self.actors.pop()
            _quietly(actor.destroy, 'destroy', actor)
        self.sensors.clear()
        self.controllers.clear()
        self._queues.clear()
        self.ego = None

    # --- stepping ---------------------------------------------------------------------------------------------

    def tick(self) -> SensorFrame:
        """Advance the simulation one fixed step and return the three cameras' images of that step."""
        if not self.sensors:
            msg = 'the session is not started (or already closed)'
            raise CarlaSessionError(msg)
        frame = self.world.tick()
        images = {kind: self._image_of(kind, frame) for kind in CAMERAS}
        rgb = images['rgb']
        return SensorFrame(
            frame=frame,
            timestamp_s=float(rgb.timestamp),
            rgb=bytes(rgb.raw_data),
            depth=bytes(images['depth'].raw_data),
            semantic=bytes(images['semantic_segmentation'].raw_data),
        )

    def _image_of(self, kind: str, frame: int) -> Any:
        """The image of ``frame`` from one camera's queue (older ones are dropped)."""
        q = self._queues[kind]
        while True:
            try:
                image = q.get(timeout=self.config.sensor_timeout_s)
            except queue.Empty as err:
                msg = f'camera {kind} delivered no image for frame {frame} within {self.config.sensor_timeout_s:g} s'
                raise CarlaSessionError(msg) from err
            if image.frame == frame:
                return image
            if image.frame > frame:
                msg = f'camera {kind} skipped frame {frame} (got {image.frame})'
                raise CarlaSessionError(msg)


def _quietly(action: Any, what: str, actor: Any) -> None:
    try:
        action()
    except (RuntimeError, AttributeError) as err:
        _LOG.warning('could not %s %s: %s', what, getattr(actor, 'id', '') if actor is not None else '', err)
