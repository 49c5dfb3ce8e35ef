"""CARLA camera buffers -> NumPy arrays, and camera intrinsics from the field of view. No carla, no rclpy.

CARLA (0.9.16) delivers every camera image as ``raw_data``: height * width * 4 bytes in **BGRA** order.

* RGB camera: the colour in B, G, R; A is 255.
* Depth camera: the distance along the optical axis is encoded in 24 bits of R, G, B (CARLA docs, "Depth camera")::

      normalized = (R + G * 256 + B * 256**2) / (256**3 - 1)
      depth_m = 1000 * normalized        # the far plane is 1000 m

* Semantic segmentation camera: the class tag in R (G = B = 0); pedestrians are tag 12 in 0.9.16.

The ``encode_*`` functions are the exact inverses (up to CARLA's 24-bit depth quantisation, 1000 m / 2**24 = 0.06 mm):
the synthetic source uses them to produce CARLA-format frames that then go through the same decoders as the bridge.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from carla_bridge.errors import CarlaFormatError

FAR_PLANE_M = 1000.0
"""CARLA's depth camera far plane: the largest encodable depth (the sky)."""
DEPTH_SCALE = 256**3 - 1
"""The 24-bit depth code of the far plane."""
PEDESTRIAN_TAG = 12
"""Semantic tag of pedestrians in CARLA 0.9.16 (CityScapes palette order)."""
# A few other 0.9.16 tags the synthetic source writes for the background.
ROAD_TAG = 1
BUILDING_TAG = 3
SKY_TAG = 11

# Channel indices in a BGRA pixel.
_B, _G, _R, _A = 0, 1, 2, 3

U8 = npt.NDArray[np.uint8]
F32 = npt.NDArray[np.float32]


def bgra_view(raw: bytes | bytearray | memoryview | np.ndarray, width: int, height: int) -> U8:
    """View a CARLA ``raw_data`` buffer as an (H, W, 4) BGRA uint8 array (no copy)."""
    if width <= 0 or height <= 0:
        msg = f'CARLA image size must be positive, got {width}x{height}'
        raise CarlaFormatError(msg)
    flat = np.frombuffer(raw, dtype=np.uint8) if not isinstance(raw, np.ndarray) else raw.reshape(-1)
    if flat.dtype != np.uint8:
        msg = f'CARLA raw_data must be bytes or uint8, got {flat.dtype}'
        raise CarlaFormatError(msg)
    expected = width * height * 4
    if flat.size != expected:
        msg = f'CARLA raw_data has {flat.size} bytes; expected width * height * 4 = {width} * {height} * 4 = {expected}'
        raise CarlaFormatError(msg)
    return flat.reshape(height, width, 4)


def bgra_to_rgb(raw: bytes | bytearray | memoryview | np.ndarray, width: int, height: int) -> U8:
    """RGB camera: BGRA raw_data -> contiguous (H, W, 3) rgb8."""
    bgra = bgra_view(raw, width, height)
    return np.ascontiguousarray(bgra[:, :, [_R, _G, _B]])


def decode_depth(raw: bytes | bytearray | memoryview | np.ndarray, width: int, height: int) -> F32:
    """Depth camera: BGRA raw_data -> (H, W) float32 metres (32FC1), with CARLA's documented formula.

    depth_m = 1000 * (R + G * 256 + B * 256**2) / (256**3 - 1); the far plane (sky) decodes to exactly 1000 m.
    """
    bgra = bgra_view(raw, width, height)
    code = (
        bgra[:, :, _R].astype(np.uint32)
        + bgra[:, :, _G].astype(np.uint32) * 256
        + bgra[:, :, _B].astype(np.uint32) * 65536
    )
    # float64 for the division: float32 cannot hold 24-bit codes exactly.
    return (code.astype(np.float64) * (FAR_PLANE_M / DEPTH_SCALE)).astype(np.float32)


def semantic_tags(raw: bytes | bytearray | memoryview | np.ndarray, width: int, height: int) -> U8:
    """Semantic segmentation camera: BGRA raw_data -> (H, W) uint8 class tags (the R channel)."""
    return np.ascontiguousarray(bgra_view(raw, width, height)[:, :, _R])


def pedestrian_mask(
    raw: bytes | bytearray | memoryview | np.ndarray, width: int, height: int, tag: int = PEDESTRIAN_TAG
) -> U8:
    """Semantic segmentation camera: BGRA raw_data -> (H, W) mono8 mask, 255 where the tag is ``tag`` else 0."""
    return np.where(semantic_tags(raw, width, height) == tag, np.uint8(255), np.uint8(0))


def encode_rgb(rgb: U8) -> U8:
    """(H, W, 3) rgb8 -> (H, W, 4) BGRA as a CARLA RGB camera delivers it (alpha 255)."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        msg = f'rgb must be (H, W, 3) uint8, got {rgb.dtype} {rgb.shape}'
        raise CarlaFormatError(msg)
    bgra = np.empty((*rgb.shape[:2], 4), np.uint8)
    bgra[:, :, _B] = rgb[:, :, 2]
    bgra[:, :, _G] = rgb[:, :, 1]
    bgra[:, :, _R] = rgb[:, :, 0]
    bgra[:, :, _A] = 255
    return bgra


def encode_depth(depth_m: F32) -> U8:
    """(H, W) metres -> (H, W, 4) BGRA as a CARLA depth camera delivers it (clipped to [0, 1000] m; NaN -> far)."""
    if depth_m.ndim != 2:
        msg = f'depth must be (H, W), got {depth_m.shape}'
        raise CarlaFormatError(msg)
    d = np.nan_to_num(depth_m.astype(np.float64), nan=FAR_PLANE_M, posinf=FAR_PLANE_M, neginf=0.0)
    code = np.round(np.clip(d, 0.0, FAR_PLANE_M) * (DEPTH_SCALE / FAR_PLANE_M)).astype(np.uint32)
    bgra = np.empty((*depth_m.shape, 4), np.uint8)
    bgra[:, :, _R] = code & 0xFF
    bgra[:, :, _G] = (code >> 8) & 0xFF
    bgra[:, :, _B] = (code >> 16) & 0xFF
    bgra[:, :, _A] = 255
    return bgra


def encode_tags(tags: U8) -> U8:
    """(H, W) uint8 class tags -> (H, W, 4) BGRA as CARLA's raw semantic camera delivers it (tag in R)."""
    if tags.ndim != 2 or tags.dtype != np.uint8:
        msg = f'tags must be (H, W) uint8, got {tags.dtype} {tags.shape}'
        raise CarlaFormatError(msg)
    bgra = np.zeros((*tags.shape, 4), np.uint8)
    bgra[:, :, _R] = tags
    bgra[:, :, _A] = 255
    return bgra


@dataclass(frozen=True)
class Intrinsics:
    """A distortion-free pinhole camera as CARLA renders it (square pixels, principal point at the centre)."""

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0:
            msg = f'camera size must be positive, got {self.width}x{self.height}'
            raise CarlaFormatError(msg)
        if not (self.fx > 0 and self.fy > 0):
            msg = f'focal lengths must be positive, got fx={self.fx}, fy={self.fy}'
            raise CarlaFormatError(msg)

    @property
    def k(self) -> list[float]:
        """The row-major 3x3 camera matrix (sensor_msgs/CameraInfo.k)."""
        return [self.fx, 0.0, self.cx, 0.0, self.fy, self.cy, 0.0, 0.0, 1.0]

    @property
    def p(self) -> list[float]:
        """The row-major 3x4 projection matrix of a monocular camera (sensor_msgs/CameraInfo.p)."""
        return [self.fx, 0.0, self.cx, 0.0, 0.0, self.fy, self.cy, 0.0, 0.0, 0.0, 1.0, 0.0]


def intrinsics_from_fov(width: int, height: int, fov_deg: float) -> Intrinsics:
    """Intrinsics of a CARLA camera of ``width`` x ``height`` px and horizontal field of view ``fov_deg``.

    f = width / (2 tan(fov / 2)) for both axes (CARLA pixels are square), principal point at (width / 2, height / 2),
    as carla-simulator/ros-bridge computes them.
    """
    if not 0.0 < fov_deg < 180.0:
        msg = f'horizontal field of view must be in (0, 180) degrees, got {fov_deg}'
        raise CarlaFormatError(msg)
    if width <= 0 or height <= 0:
        msg = f'camera size must be positive, got {width}x{height}'
        raise CarlaFormatError(msg)
    f = width / (2.0 * float(np.tan(np.radians(fov_deg) / 2.0)))
    return Intrinsics(width=width, height=height, fx=f, fy=f, cx=width / 2.0, cy=height / 2.0)


def fill_camera_info(msg: object, intrinsics: Intrinsics) -> object:
    """Fill a ``sensor_msgs/CameraInfo`` (duck-typed; the header is left to the caller): plumb_bob, no distortion."""
    msg.width = intrinsics.width  # type: ignore[attr-defined]
    msg.height = intrinsics.height  # type: ignore[attr-defined]
    msg.distortion_model = 'plumb_bob'  # type: ignore[attr-defined]
    msg.d = [0.0] * 5  # type: ignore[attr-defined]
    msg.k = intrinsics.k  # type: ignore[attr-defined]
    msg.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]  # type: ignore[attr-defined]
    msg.p = intrinsics.p  # type: ignore[attr-defined]
    return msg
