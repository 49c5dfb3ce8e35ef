"""scripts/setup.sh explains bad setup states instead of failing obscurely (checked with --check: changes nothing)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SETUP = ROOT / 'scripts' / 'setup.sh'


def run_setup(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ['bash', str(SETUP), *args], capture_output=True, text=True, env={**os.environ, **env}, timeout=120, check=False,
    )


def test_check_passes_on_the_set_up_machine() -> None:
    result = run_setup('--check')
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip(), 'bin', 'python').exists()


def test_wrong_python_version_is_named(tmp_path: Path) -> None:
    fake = tmp_path / 'python3.10'
    fake.write_text('#!/bin/sh\necho 3.10\n')
    fake.chmod(0o755)
    result = run_setup('--check', ANON_ROS_PYTHON=str(fake))
    assert result.returncode == 1
    assert 'needs Python 3.11' in result.stderr and 'is Python 3.10' in result.stderr


def test_missing_debian_package_is_named(tmp_path: Path) -> None:
    packages = tmp_path / 'debian.txt'
    packages.write_text('# a comment\ncmake\nanon-ros-no-such-package\n')
    result = run_setup('--check', ANON_ROS_DEBIAN_LIST=str(packages))
    assert result.returncode == 1
    assert 'missing Debian packages: anon-ros-no-such-package;' in result.stderr
    assert 'apt-get install anon-ros-no-such-package' in result.stderr


def test_missing_and_broken_cache_are_told_apart(tmp_path: Path) -> None:
    missing = run_setup('--check', ANON_ROS_CACHE=str(tmp_path))
    assert missing.returncode == 1
    venv = re.search(r'the venv (\S+) is not built yet', missing.stderr)
    assert venv, missing.stderr
    # An interrupted build: the folder exists, the interpreter does not.
    Path(venv.group(1)).mkdir(parents=True)
    Path(venv.group(1), '.complete').touch()
    broken = run_setup('--check', ANON_ROS_CACHE=str(tmp_path))
    assert broken.returncode == 1
    assert f'the cached venv {venv.group(1)} is broken or incomplete' in broken.stderr
