"""A pyvirtualcam backend that keeps the frames it is sent.

These machines have no v4l2loopback device, so tests of the virtual camera register this backend with
``pyvirtualcam.register_backend`` instead of the v4l2 one; everything above the backend is the real pyvirtualcam.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

import numpy as np

BACKEND_NAME = 'anon_capture'


class CapturingBackend:
    """A pyvirtualcam backend (its documented constructor/send/close/device/native_fourcc) that keeps frames."""

    frames: ClassVar[list[np.ndarray]] = []
    opened: ClassVar[dict[str, Any]] = {}

    def __init__(self, *, width: int, height: int, fps: float, fourcc: int, device: str | None, **_kw: Any) -> None:
        CapturingBackend.opened = {'width': width, 'height': height, 'fps': fps, 'fourcc': fourcc, 'device': device}
        self._device = device or 'capture0'

    def send(self, frame: np.ndarray) -> None:
        CapturingBackend.frames.append(frame.copy())

    def close(self) -> None:
        CapturingBackend.opened['closed'] = True

    def device(self) -> str:
        return self._device

    def native_fourcc(self) -> int | None:
        return None


@contextmanager
def capturing_backend() -> Iterator[type[CapturingBackend]]:
    """Register :class:`CapturingBackend` as ``anon_capture`` for the duration of the block."""
    import pyvirtualcam
    from pyvirtualcam import camera as pvc_camera

    CapturingBackend.frames = []
    CapturingBackend.opened = {}
    pyvirtualcam.register_backend(BACKEND_NAME, CapturingBackend)
    try:
        yield CapturingBackend
    finally:
        pvc_camera.BACKENDS.pop(BACKEND_NAME, None)
