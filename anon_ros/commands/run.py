"""``anon-ros run CONFIG``: run a configuration's node graph in one process (no launch_ros needed).

CONFIG is ``config/<name>.yaml`` (its graph ``config/<name>.graph.yaml`` is read), the graph file itself, or a bare
name such as ``demo`` for a configuration shipped with anon_ros. ``launch/<name>.launch.py`` starts the same graph
on a full ROS 2 install. Ctrl-C or SIGTERM stops it cleanly.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from anon_ros.graph import GRAPH_SUFFIX, GraphError, graph_path, load_graph


def shipped_config_dir() -> Path:
    """config/ of the source tree when running from one, else share/anon_ros/config of the installed package."""
    source = Path(__file__).resolve().parents[2] / 'config'
    if source.is_dir():
        return source
    from ament_index_python.packages import get_package_share_directory

    return Path(get_package_share_directory('anon_ros')) / 'config'


def resolve_config(config: str) -> Path:
    """A path to a graph file for ``config`` (a path, or the bare name of a shipped configuration)."""
    path = Path(config)
    if path.suffix in ('.yaml', '.yml') or path.exists():
        return graph_path(path)
    shipped = shipped_config_dir() / f'{config}{GRAPH_SUFFIX}'
    if shipped.is_file():
        return shipped
    names = sorted(p.name[: -len(GRAPH_SUFFIX)] for p in shipped_config_dir().glob(f'*{GRAPH_SUFFIX}'))
    msg = f'no configuration {config!r}: not a YAML path, and not one of the shipped configurations {names}'
    raise GraphError(msg)


def parse_override(text: str) -> tuple[str, str, Any]:
    """``node.param=value`` -> (node, param, value); the value is parsed as YAML (5 -> int, true -> bool)."""
    key, sep, value = text.partition('=')
    node, dot, param = key.partition('.')
    if not sep or not dot or not node or not param:
        msg = f'parameter override {text!r}: expected NODE.PARAM=VALUE, e.g. synthetic_source.duration=10'
        raise argparse.ArgumentTypeError(msg)
    return node, param, yaml.safe_load(value) if value else ''


def add_parser(subparsers: argparse._SubParsersAction, name: str, help_text: str) -> None:
    parser = subparsers.add_parser(name, help=help_text, description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_arguments(parser)
    parser.set_defaults(func=run)


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('config', help='config/<name>.yaml, config/<name>.graph.yaml, or a shipped name (demo, ...)')
    parser.add_argument('-p', '--param', dest='params', action='append', type=parse_override, default=[],
                        metavar='NODE.PARAM=VALUE',
                        help='override a parameter of one node (repeatable); as in ROS parameter files, a double '
                             'needs a decimal point (synthetic_source.duration=20.0)')
    parser.add_argument('--threads', type=int, default=None, help='executor threads (default: CPU count)')


def run(args: argparse.Namespace) -> int:
    from anon_ros.runner import GraphRunner  # rclpy: only once this command is chosen

    try:
        graph = load_graph(resolve_config(args.config))
        overrides: dict[str, dict[str, Any]] = {}
        for node, param, value in args.params:
            overrides.setdefault(node, {})[param] = value
        runner = GraphRunner(graph, overrides, num_threads=args.threads)
    except GraphError as err:
        print(f'anon-ros run: {err}', file=sys.stderr)
        return 2
    return runner.run()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m anon_ros.commands.run CONFIG``: the same command without the ``anon-ros`` front end."""
    parser = argparse.ArgumentParser(prog='anon-ros run', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_arguments(parser)
    try:
        return run(parser.parse_args(argv))
    except KeyboardInterrupt:
        return 130


if __name__ == '__main__':
    raise SystemExit(main())
