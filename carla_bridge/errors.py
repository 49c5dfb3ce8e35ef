"""Errors raised by carla_bridge."""

from __future__ import annotations

from anon_ros.core.errors import AnonRosError, DeviceError, InputError


class CarlaFormatError(InputError):
    """A CARLA raw buffer does not have the size or layout its width and height imply."""


class CarlaConnectionError(DeviceError):
    """No CARLA server answered at host:port within the timeout, or it refused the session's settings."""


class CarlaSessionError(AnonRosError):
    """The simulation could not be set up (no spawn point, a blueprint missing, a sensor that never delivered)."""
