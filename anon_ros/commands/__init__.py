"""Subcommands of the ``anon-ros`` CLI, one module each (see anon_ros.cli)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence


def command_line(words: Sequence[str], args: argparse.Namespace) -> str:
    """The ``anon-ros`` command that ran, for reports: ``words`` (e.g. ``eval faces``) and the arguments after the
    last of them (from ``args.argv`` when called through :func:`module_main`, else from ``sys.argv``)."""
    argv = getattr(args, 'argv', None) or sys.argv[1:]
    last = words[-1]
    rest = argv[argv.index(last) + 1:] if last in argv else []
    return ' '.join(['anon-ros', *words, *rest])


def module_main(name: str, help_text: str, add_parser: Callable[..., None], argv: Sequence[str] | None) -> int:
    """``python -m anon_ros.commands.<name> ...``, the same as ``anon-ros <name> ...``."""
    parser = argparse.ArgumentParser(prog='anon-ros')
    add_parser(parser.add_subparsers(), name, help_text)
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args([name, *argv])
    args.argv = [name, *argv]
    return int(args.func(args) or 0)


def add_offline_options(parser: argparse.ArgumentParser) -> None:
    """The options ``anonymize-bag`` and ``anonymize-video`` share (defaults: those of
    :func:`anon_ros.offline.default_face_factory`, which is not imported here so ``--help`` stays fast)."""
    parser.add_argument('--detect-every', type=int, default=3,
                        help='detect on every N-th frame (keyframes); frames in between get the tracked '
                             'heads from before them and the heads found at the next keyframe (default 3)')
    parser.add_argument('--threads', type=int, default=1,
                        help='detector threads; detection runs beside decoding and writing (default 1)')
    parser.add_argument('--seed', type=int, default=None, help='seed of the voice anonymizer draw (default: random)')
    parser.add_argument('--quiet', action='store_true', help='no progress bar')
