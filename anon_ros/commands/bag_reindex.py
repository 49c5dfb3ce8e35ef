"""``anon-ros bag-reindex BAG``: make a bag left by a killed recorder readable (like ``ros2 bag reindex``)."""

from __future__ import annotations

import argparse
import sys


def add_parser(subparsers: argparse._SubParsersAction, name: str, help_text: str) -> None:
    parser = subparsers.add_parser(
        name, help=help_text,
        description=(
            f'{help_text}. Closes unfinished MCAP files after their last complete chunk and rewrites metadata.yaml '
            'from what the files hold (MCAP or sqlite3). Safe to run on a healthy bag.'
        ),
    )
    parser.add_argument('bag', help='bag directory')
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from anon_ros.bags import BagError, reindex

    try:
        report = reindex(args.bag)
    except BagError as err:
        print(f'anon-ros bag-reindex: error: {err}', file=sys.stderr)
        return 2
    sealed = f'; closed unfinished {", ".join(report.sealed)}' if report.sealed else ''
    print(f'{args.bag}: {report.message_count} messages in {len(report.files)} file(s){sealed}')
    for topic, count in report.topics.items():
        print(f'  {topic}: {count}')
    return 0
