"""The installed package: ament index, launch/config data files, console entry points."""

from __future__ import annotations

import subprocess
from pathlib import Path

from ament_index_python.packages import get_package_prefix, get_package_share_directory

import anon_ros
from anon_ros.testing.ros_graph import child_env

ROOT = Path(__file__).resolve().parent.parent


def test_ament_index_finds_launch_and_config_files() -> None:
    share = Path(get_package_share_directory('anon_ros'))
    assert (share / 'package.xml').is_file()
    for folder, pattern in (('launch', '*.launch.py'), ('config', '*.yaml'), ('config', '*.xml')):
        shipped = sorted(p.name for p in (ROOT / folder).glob(pattern))
        installed = sorted(p.name for p in (share / folder).glob(pattern))
        assert shipped, f'the source tree has no {folder}/{pattern}'
        assert installed == shipped, f'{folder}: installed {installed}, source has {shipped}; rerun scripts/setup.sh'
    # The message package is indexed as well, so `ros2 interface` and launch substitutions see it.
    assert Path(get_package_prefix('anon_ros_msgs'), 'share', 'anon_ros_msgs', 'msg', 'AudioStamped.msg').is_file()


def test_cli_version_and_help() -> None:
    version = subprocess.run(['anon-ros', '--version'], capture_output=True, text=True, env=child_env(), check=True)
    assert version.stdout.strip() == f'anon_ros {anon_ros.__version__}'
    usage = subprocess.run(['anon-ros', '--help'], capture_output=True, text=True, env=child_env(), check=True)
    assert 'demo' in usage.stdout and 'dds-env' in usage.stdout


def test_cli_dds_env_forces_loopback() -> None:
    out = subprocess.run(
        ['anon-ros', 'dds-env', '--domain-id', '42'], capture_output=True, text=True, env=child_env(), check=True
    ).stdout
    assert 'export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST' in out
    assert 'export ROS_DOMAIN_ID=42' in out
