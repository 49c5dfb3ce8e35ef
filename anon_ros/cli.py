"""The ``anon-ros`` command: one entry point for demos, offline tools, evaluation and benchmarks.

Subcommands live in their own modules and are imported only when chosen, so ``anon-ros --help`` stays fast and
works without rclpy or models. A module provides ``add_parser(subparsers)`` that registers its parser and sets
``func(args) -> int`` as the default.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from anon_ros import __version__

# name -> (module, one-line help). Order is the order of --help.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    'demo': ('anon_ros.commands.demo', 'run the embedded demo (no CARLA, no camera needed)'),
    'run': ('anon_ros.commands.run', "run a configuration's node graph in one process (no launch_ros needed)"),
    'anonymize-bag': ('anon_ros.commands.anonymize_bag', 'write an anonymized copy of a rosbag2 bag'),
    'anonymize-video': ('anon_ros.commands.anonymize_video', 'anonymize faces and voice in a video file, keeping its sound'),
    'bag-reindex': ('anon_ros.commands.bag_reindex', 'make a bag left by a killed recorder readable'),
    'eval': ('anon_ros.commands.eval', 'evaluate face or voice anonymization (privacy, utility) against peers'),
    'bench': ('anon_ros.commands.bench', 'benchmark speed: stages, fps, voice RTF, DDS and end-to-end latency'),
    'dds-env': ('anon_ros.commands.dds_env', 'print the environment that keeps DDS on this machine'),
}


def ensure_ament_prefix() -> None:
    """Let ament_index find packages installed into this virtualenv (pip puts share/ under sys.prefix).

    On a sourced ROS 2 install AMENT_PREFIX_PATH is already set and this only appends the venv if it holds our
    package index.
    """
    index = Path(sys.prefix) / 'share' / 'ament_index' / 'resource_index' / 'packages' / 'anon_ros'
    paths = [p for p in os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep) if p]
    if index.exists() and sys.prefix not in paths:
        os.environ['AMENT_PREFIX_PATH'] = os.pathsep.join([*paths, sys.prefix])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='anon-ros',
        description='Anonymize people (faces, voices) in ROS 2 sensor streams in real time.',
    )
    parser.add_argument('--version', action='version', version=f'anon_ros {__version__}')
    subparsers = parser.add_subparsers(title='commands', metavar='COMMAND')
    chosen = _chosen_subcommand(sys.argv[1:])
    for name, (module, help_text) in SUBCOMMANDS.items():
        if name == chosen:
            importlib.import_module(module).add_parser(subparsers, name, help_text)
        else:
            # Listed in --help without importing the module (and its heavy dependencies).
            subparsers.add_parser(name, help=help_text, add_help=False)
    return parser


def _chosen_subcommand(argv: Sequence[str]) -> str | None:
    return next((arg for arg in argv if arg in SUBCOMMANDS), None)


def main(argv: Sequence[str] | None = None) -> int:
    if argv is not None:
        sys.argv = [sys.argv[0], *argv]
    ensure_ament_prefix()
    parser = build_parser()
    args = parser.parse_args()
    func = getattr(args, 'func', None)
    if func is None:
        parser.print_help()
        return 0 if len(sys.argv) == 1 else 2
    try:
        return int(func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == '__main__':
    sys.exit(main())
