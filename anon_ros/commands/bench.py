"""``anon-ros bench``: speed of the face pipeline (per stage, 1280x720, 1/5/10 people, deface on the same frames), the
streaming voice anonymizer (real-time factor, latency), DDS transport of 720p RGB-D between two processes, the demo
graph end to end, CPU and peak memory. Writes ``results.json``, ``report.md`` and PNG plots to ``--out``."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from anon_ros.commands import command_line, module_main

HELP = 'benchmark speed: per-stage ms, fps, voice RTF, DDS and end-to-end latency, CPU, memory'


def add_parser(subparsers: argparse._SubParsersAction, name: str, help_text: str) -> None:
    parser = subparsers.add_parser(name, help=help_text, description=__doc__)
    parser.add_argument(
        '--out', type=Path, default=Path('out/eval/bench'), help='output folder (default out/eval/bench)'
    )
    parser.add_argument(
        '--quick', action='store_true', help='tiny run (seconds): 3 frames per crowd, 1 s DDS, no end-to-end graph'
    )
    parser.add_argument('--size', type=int, default=None, help='frames per crowd size (default 20; quick 3)')
    parser.add_argument('--people', default='1,5,10', help='crowd sizes (default 1,5,10)')
    parser.add_argument(
        '--dds-duration', type=float, default=None, help='seconds of DDS probe (default 5; quick 1; 0 = skip)'
    )
    parser.add_argument(
        '--e2e-duration',
        type=float,
        default=None,
        help='seconds of the demo graph for end-to-end latency (default 10; quick 0 = skip)',
    )
    parser.add_argument('--voice-seconds', type=float, default=20.0, help='seconds of speech streamed (default 20)')
    parser.add_argument('--no-peer', action='store_true', help='do not run deface')
    parser.add_argument('--threads', type=int, default=2)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from anon_ros.core.errors import AnonRosError
    from anon_ros.eval import speed
    from anon_ros.eval.report import machine_info, prepare_out, write_json

    t0 = time.perf_counter()
    try:
        people = tuple(int(p) for p in args.people.split(',') if p)
    except ValueError:
        print(f'anon-ros bench: error: --people must be comma-separated integers, got {args.people!r}', file=sys.stderr)
        return 2
    frames = args.size if args.size is not None else (3 if args.quick else 20)
    dds = args.dds_duration if args.dds_duration is not None else (1.0 if args.quick else 5.0)
    e2e = args.e2e_duration if args.e2e_duration is not None else (0.0 if args.quick else 10.0)
    try:
        out = prepare_out(args.out)
        res = speed.run_bench(
            frames,
            people,
            dds_duration=dds,
            e2e_duration=e2e,
            voice_seconds=args.voice_seconds if not args.quick else 3.0,
            threads=args.threads,
            with_peer=not args.no_peer,
            log=lambda m: print(m, file=sys.stderr, flush=True),
        )
    except AnonRosError as err:
        print(f'anon-ros bench: error: {err}', file=sys.stderr)
        return 2
    result: dict[str, Any] = {'kind': 'bench', 'command': command_line(['bench'], args), 'machine': machine_info(), **res}
    result['elapsed_s'] = time.perf_counter() - t0
    result['files'] = speed.write_report(result, out)
    write_json(out / 'results.json', result)
    print(speed.table(result))
    print(f'wrote {out}/results.json, report.md and plots in {result["elapsed_s"]:.0f} s')
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m anon_ros.commands.bench ...`` (same as ``anon-ros bench ...``)."""
    return module_main('bench', HELP, add_parser, argv)


if __name__ == '__main__':
    sys.exit(main())
