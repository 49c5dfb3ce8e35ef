"""What every anon_ros node shares: declared parameters, explicit QoS, one ``main()`` shape.

Parameters are declared once, with descriptors (description, range, allowed values), read once at start-up and
validated there: a bad value stops the node with a message that names the parameter, it is never re-read per message.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import rclpy
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data

from anon_ros.core.errors import AnonRosError

E = TypeVar('E', bound=enum.Enum)

# Inputs from sensors: best effort, a short queue, so a slow consumer sees the latest data instead of a backlog.
SENSOR_QOS: QoSProfile = qos_profile_sensor_data
# Audio in: best effort like any sensor, but with room for ~1 s of 20 ms chunks, since chunks come in bursts (a
# scheduler hiccup, a bag being played) and each lost one is an audible gap.
AUDIO_IN_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST, depth=50, reliability=ReliabilityPolicy.BEST_EFFORT,
    durability=DurabilityPolicy.VOLATILE,
)
# Anonymized images out: reliable (recorders and bridges want every frame) but only the latest two kept.
IMAGE_OUT_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST, depth=2, reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)
# Audio out: reliable with room for ~1 s of 20 ms chunks, since a lost chunk is an audible gap.
AUDIO_OUT_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST, depth=50, reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)


class ParameterError(AnonRosError, ValueError):
    """A node parameter has a value the node cannot run with."""


def declare(
    node: Node,
    name: str,
    default: Any,
    description: str,
    *,
    min_value: float | None = None,
    max_value: float | None = None,
    choices: Sequence[str] | None = None,
    read_only: bool = True,
) -> Any:
    """Declare ``name`` with a descriptor and return its value, checked against the range or choices.

    ``read_only`` (the default) because nodes read parameters once at start-up; changing one later would silently
    do nothing.
    """
    descriptor = ParameterDescriptor(description=description, read_only=read_only)
    if choices is not None:
        descriptor.additional_constraints = f'one of: {", ".join(choices)}'
    if min_value is not None and max_value is not None:
        if isinstance(default, bool) or not isinstance(default, (int, float)):
            msg = f'parameter {name}: a range needs a numeric default, got {default!r}'
            raise TypeError(msg)
        if isinstance(default, int):
            descriptor.integer_range = [IntegerRange(from_value=int(min_value), to_value=int(max_value), step=0)]
        else:
            descriptor.floating_point_range = [
                FloatingPointRange(from_value=float(min_value), to_value=float(max_value), step=0.0)
            ]
    try:
        value = node.declare_parameter(name, default, descriptor).value
    except Exception as err:  # rclpy raises several types for out-of-range or mistyped overrides
        msg = f'parameter {name}: {err}'
        raise ParameterError(msg) from err
    if choices is not None and value not in choices:
        msg = f'parameter {name} is {value!r}; expected one of {list(choices)}'
        raise ParameterError(msg)
    for bound, ok in ((min_value, lambda v, b: v >= b), (max_value, lambda v, b: v <= b)):
        if bound is not None and isinstance(value, (int, float)) and not ok(value, bound):
            msg = f'parameter {name} is {value}; expected a value in [{min_value}, {max_value}]'
            raise ParameterError(msg)
    return value


def declare_enum(node: Node, name: str, enum_type: type[E], default: E, description: str) -> E:
    """Declare a string parameter whose value must name a member of ``enum_type`` (by value)."""
    choices = [str(member.value) for member in enum_type]
    return enum_type(declare(node, name, str(default.value), description, choices=choices))


def run(node_factory: Callable[[], Node], args: Sequence[str] | None = None) -> int:
    """The one ``main()`` of every node: init, build, spin until Ctrl-C or shutdown, clean up.

    A node that cannot start (bad parameter, missing model or device) logs why and exits with status 2.
    """
    rclpy.init(args=args)
    node: Node | None = None
    try:
        node = node_factory()
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except AnonRosError as err:
        rclpy.logging.get_logger('anon_ros').fatal(f'cannot start: {err}')
        return 2
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0
