"""``anon-ros anonymize-bag IN OUT``: write an anonymized copy of a rosbag2 bag (faces in images, voices in audio)."""

from __future__ import annotations

import argparse
import sys

from anon_ros.bags import StorageFormat
from anon_ros.commands import add_offline_options


def add_parser(subparsers: argparse._SubParsersAction, name: str, help_text: str) -> None:
    parser = subparsers.add_parser(
        name, help=help_text,
        description=(
            f'{help_text}. Every sensor_msgs/Image and CompressedImage topic goes through the face anonymizer, '
            'every anon_ros_msgs/AudioStamped topic through the voice anonymizer. Depth paired with an image '
            '(--depth) guides the face masks and is written with its head regions flat (no face geometry); unpaired '
            'depth and all other topics are copied unchanged. Header stamps and receive times are kept. A frame '
            'that cannot be processed is written black (or dropped with --on-failure drop), never raw.'
        ),
    )
    parser.add_argument('input', help='bag directory (MCAP or sqlite3, rosbag2 Humble to Kilted) or .mcap/.db3 file')
    parser.add_argument('output', help='bag directory to create (must not exist)')
    parser.add_argument('--depth', action='append', default=[], metavar='IMAGE=DEPTH',
                        help='give DEPTH (16UC1 mm or 32FC1 m) to the face anonymizer with IMAGE (repeatable)')
    parser.add_argument('--depth-slop', type=float, default=0.05, metavar='S',
                        help='max header stamp difference between an image and its depth (default 0.05 s)')
    parser.add_argument('--exclude', action='append', default=[], metavar='TOPIC',
                        help='leave TOPIC out of the output (repeatable)')
    parser.add_argument('--on-failure', choices=['mask', 'drop'], default='mask',
                        help='a frame the anonymizer cannot process is written black (mask) or left out (drop)')
    parser.add_argument('--storage', choices=[s.value for s in StorageFormat], default=None,
                        help='output storage (default: same as the input)')
    parser.add_argument('--jpeg-quality', type=int, default=90, help='quality of re-encoded JPEG images (1-100)')
    add_offline_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from anon_ros.core.errors import AnonRosError
    from anon_ros.offline import (
        UNPAIRED_DEPTH,
        BagAnonymizeConfig,
        FailureAction,
        anonymize_bag,
        default_face_factory,
        default_voice_factory,
        parse_pairs,
    )

    try:
        config = BagAnonymizeConfig(
            exclude=frozenset(args.exclude),
            depth_pairs=parse_pairs(args.depth),
            depth_slop_s=args.depth_slop,
            on_failure=FailureAction(args.on_failure),
            storage=StorageFormat(args.storage) if args.storage else None,
            jpeg_quality=args.jpeg_quality,
        )
        report = anonymize_bag(
            args.input, args.output, default_face_factory(args.threads, args.detect_every),
            default_voice_factory(args.seed), config, progress=not args.quiet,
        )
    except AnonRosError as err:
        print(f'anon-ros anonymize-bag: error: {err}', file=sys.stderr)
        return 2
    for topic, t in report.topics.items():
        failed = f', {t.failed} failed ({args.on_failure})' if t.failed else ''
        print(f'{topic} [{t.msgtype}] {t.action}: {t.messages_in} in, {t.messages_out} out{failed}', file=sys.stderr)
        if t.action == UNPAIRED_DEPTH:
            print(f'warning: {topic} is depth copied unchanged (a depth map of a face is 3D face geometry): pair it '
                  f'with its image (--depth IMAGE={topic}) or leave it out (--exclude {topic})', file=sys.stderr)
    print(
        f'wrote {args.output}: {report.bag_duration_s:.1f} s of bag in {report.wall_s:.1f} s '
        f'({report.realtime_factor:.2f}x real time)', file=sys.stderr,
    )
    return 0
