"""``anon-ros dds-env``: print shell exports that keep DDS on loopback with the shipped shared-memory profile."""

from __future__ import annotations

import argparse
import shlex

from anon_ros.dds import local_dds_env

KEYS = ('ROS_AUTOMATIC_DISCOVERY_RANGE', 'RMW_IMPLEMENTATION', 'ROS_DOMAIN_ID', 'FASTDDS_DEFAULT_PROFILES_FILE')


def add_parser(subparsers: argparse._SubParsersAction, name: str, help_text: str) -> None:
    parser = subparsers.add_parser(name, help=help_text, description=f'{help_text}. Use: eval "$(anon-ros dds-env)"')
    parser.add_argument('--domain-id', type=int, help='ROS_DOMAIN_ID to use (default: the current one, else random)')
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    env = local_dds_env(domain_id=args.domain_id)
    for key in KEYS:
        print(f'export {key}={shlex.quote(env[key])}')
    return 0
