"""DDS settings that keep anon_ros on the local machine: loopback discovery, a private domain, shared memory.

No rclpy here: these are environment variables, which must be set before the ROS middleware starts in a process.
"""

from __future__ import annotations

import os
import random
from collections.abc import Mapping
from pathlib import Path

PROFILE_NAME = 'fastdds_local.xml'
# ROS 2 domain ids that map to valid Fast DDS ports on every platform (REP 2000 / ROS docs: 0-101 on Linux).
MAX_DOMAIN_ID = 101


def profile_path() -> Path:
    """The shipped Fast DDS profile: from the source tree, else from the installed share/anon_ros/config."""
    source = Path(__file__).resolve().parent.parent / 'config' / PROFILE_NAME
    if source.is_file():
        return source
    from ament_index_python.packages import get_package_share_directory  # only on an installed package

    return Path(get_package_share_directory('anon_ros')) / 'config' / PROFILE_NAME


def random_domain_id(rng: random.Random | None = None) -> int:
    """A domain id for one test run or demo, so concurrent runs on one machine do not see each other."""
    # 0 is the default every other ROS program uses: never pick it.
    return (rng or random.SystemRandom()).randint(1, MAX_DOMAIN_ID)


def local_dds_env(base: Mapping[str, str] | None = None, domain_id: int | None = None) -> dict[str, str]:
    """Return ``base`` (default: os.environ) plus the variables that keep DDS traffic on this machine.

    An explicit ``ROS_DOMAIN_ID`` or Fast DDS profile already in ``base`` is kept: the user's choice wins, but the
    discovery range is always forced to LOCALHOST.
    """
    env = dict(os.environ if base is None else base)
    env['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    env.setdefault('RMW_IMPLEMENTATION', 'rmw_fastrtps_cpp')
    if domain_id is not None:
        env['ROS_DOMAIN_ID'] = str(domain_id)
    env.setdefault('ROS_DOMAIN_ID', str(random_domain_id()))
    env.setdefault('FASTDDS_DEFAULT_PROFILES_FILE', str(profile_path()))
    return env


def apply_local_dds_env(domain_id: int | None = None) -> dict[str, str]:
    """Set the local DDS variables in this process (before rclpy.init) and return the ones that were set."""
    env = local_dds_env(domain_id=domain_id)
    keys = ('ROS_AUTOMATIC_DISCOVERY_RANGE', 'RMW_IMPLEMENTATION', 'ROS_DOMAIN_ID', 'FASTDDS_DEFAULT_PROFILES_FILE')
    os.environ.update({k: env[k] for k in keys})
    return {k: env[k] for k in keys}
