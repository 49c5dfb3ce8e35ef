"""One style authority: ruff over the whole tree, mypy over the ROS-free core (configured in pyproject.toml)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_ruff_is_clean() -> None:
    result = subprocess.run([sys.executable, '-m', 'ruff', 'check', '--output-format', 'concise', '.'],
                            cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout[-4000:]


def test_mypy_is_clean_on_the_core() -> None:
    result = subprocess.run([sys.executable, '-m', 'mypy', 'anon_ros/core'], cwd=ROOT, capture_output=True,
                            text=True, check=False)
    assert result.returncode == 0, result.stdout[-4000:]


def test_the_core_never_imports_ros() -> None:
    """The algorithms stay usable (and testable) without ROS: no rclpy or message package in anon_ros/core."""
    offenders = [
        f'{path.relative_to(ROOT)}:{n}'
        for path in sorted((ROOT / 'anon_ros' / 'core').rglob('*.py'))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if line.lstrip().startswith(('import rclpy', 'from rclpy', 'from sensor_msgs', 'from std_msgs',
                                     'from anon_ros_msgs', 'import message_filters'))
    ]
    assert not offenders, offenders
