"""Errors raised by the core algorithms."""


class AnonRosError(Exception):
    """Base class of every error anon_ros raises on purpose."""


class InputError(AnonRosError, ValueError):
    """An input (frame, depth map, audio chunk) is malformed; the message says what was expected and what came."""


class ModelError(AnonRosError):
    """A model file is missing, unreadable or of the wrong kind."""


class DeviceError(AnonRosError):
    """An audio or video device is missing, busy or cannot be opened with the requested settings."""
