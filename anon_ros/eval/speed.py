"""Speed: the face pipeline's per-stage milliseconds and fps at 1280x720 with 1/5/10 people (deface on the same
frames), the streaming voice anonymizer's real-time factor and latency, DDS transport latency of 720p RGB-D between
two processes, the end-to-end capture-to-anonymized latency of the demo graph, and CPU time and peak memory.

CPU figures are this process's CPU seconds (all threads) over wall seconds, i.e. the average number of busy cores;
the machine may be shared, so wall-clock fps is a lower bound when other tenants are busy and CPU ms per frame is
the steadier figure.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from anon_ros.core.metrics import percentiles
from anon_ros.eval.report import measure, peak_rss_mb

FACE_STAGES = ('depth_prep', 'person_det', 'face_det', 'heads_track', 'depth_mask', 'ensemble')


def panned_frames(
    n_people: int, size: tuple[int, int], count: int, seed: int = 0
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """A synthetic RGB-D scene panned 3 px per frame (so the tracker has motion to follow)."""
    from anon_ros.core.scene import compose_scene

    sc = compose_scene(n_people, (size[0], size[1] + 3 * count), np.random.default_rng(seed + n_people))
    rgbs = [np.ascontiguousarray(sc.rgb[:, 3 * i : 3 * i + size[1]]) for i in range(count)]
    deps = [np.ascontiguousarray(sc.depth_m[:, 3 * i : 3 * i + size[1]]) for i in range(count)]
    return rgbs, deps


def face_speed(
    frames: int,
    people: tuple[int, ...] = (1, 5, 10),
    size: tuple[int, int] = (720, 1280),
    *,
    threads: int = 2,
    with_peer: bool = True,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Per-stage ms (FaceResult.timings_ms), fps and CPU per frame for each crowd size; deface on the same frames."""
    from anon_ros.core.face_pipeline import FaceAnonymizer, FaceAnonymizerConfig
    from anon_ros.eval.faces import DefacePeer

    cfg = FaceAnonymizerConfig(threads=threads)
    an = FaceAnonymizer(cfg)
    peer = DefacePeer(threads) if with_peer else None
    rows = []
    for n in people:
        rgbs, deps = panned_frames(n, size, frames)
        an.reset()
        an.process(rgbs[0], deps[0])  # warm-up
        an.reset()
        totals: list[float] = []
        stages: dict[str, list[float]] = {s: [] for s in FACE_STAGES}
        with measure() as u:
            for rgb, dep in zip(rgbs, deps, strict=True):
                res = an.process(rgb, dep)
                totals.append(res.timings_ms.get('total', float('nan')))
                for s in FACE_STAGES:
                    stages[s].append(res.timings_ms.get(s, 0.0))
        row: dict[str, Any] = {
            'people': n,
            'size': f'{size[1]}x{size[0]}',
            'frames': len(rgbs),
            'stages_ms_mean': {s: float(np.mean(v)) for s, v in stages.items()},
            'total_ms_mean': float(np.mean(totals)),
            **{f'total_ms_{k}': v for k, v in percentiles(totals).items()},
            'fps': len(rgbs) / u.wall_s,
            'cpu_ms_per_frame': 1e3 * u.cpu_s / len(rgbs),
            'cpu_cores': u.cpu_cores,
        }
        if peer is not None:
            k = max(1, min(len(rgbs), 10))
            peer(rgbs[0])  # warm-up
            with measure() as pu:
                for rgb in rgbs[:k]:
                    peer(rgb)
            row['deface'] = {
                'frames': k,
                'fps': k / pu.wall_s,
                'ms_mean': 1e3 * pu.wall_s / k,
                'cpu_ms_per_frame': 1e3 * pu.cpu_s / k,
                'cpu_cores': pu.cpu_cores,
            }
        rows.append(row)
        log(
            f'  faces {size[1]}x{size[0]}, {n} people: {row["total_ms_mean"]:.0f} ms/frame, {row["fps"]:.1f} fps'
            + (f'; deface {row["deface"]["fps"]:.1f} fps' if peer is not None else '')
        )
    return {
        'config': {
            'detect_every': cfg.detect_every,
            'detector_size': cfg.detector_size,
            'face_detector_size': cfg.face_detector_size,
            'threads': threads,
        },
        'peer': peer.implementation if peer is not None else None,
        'rows': rows,
        'peak_rss_mb': peak_rss_mb(),
    }


def voice_speed(seconds: float = 20.0, chunk_ms: float = 10.0) -> dict[str, Any]:
    """Streaming McAdams (random strength) over LibriVox speech (or flite if missing) in ``chunk_ms`` chunks: CPU
    real-time factor per core, algorithmic latency; and the B2 fixed-alpha configuration for comparison."""
    from anon_ros.core.voice.mcadams import (
        McAdamsAnonymizer,
        McAdamsConfig,
        VoiceParams,
    )
    from anon_ros.core.voice_eval import SpeechDataMissing, load_flite, load_librivox

    try:
        utts = load_librivox()
        source = 'LibriVox (pocketsphinx-testdata)'
    except SpeechDataMissing:
        utts = load_flite(voices=('slt',))
        source = 'flite slt'
    audio = np.concatenate([u.audio for u in utts]).astype(np.float32)
    audio = audio[: int(seconds * 16000)]
    out: dict[str, Any] = {'speech': source, 'seconds': audio.size / 16000, 'chunk_ms': chunk_ms}
    cfg = McAdamsConfig()
    for name, params in (('ours', None), ('b2', VoiceParams(alpha=0.8))):
        anon = McAdamsAnonymizer(cfg, params=params, rng=np.random.default_rng(0), chunk_ms=chunk_ms)
        chunk = anon.chunk_samples
        lat: list[float] = []
        c0 = time.process_time()
        for i in range(0, audio.size, chunk):
            t = time.perf_counter()
            anon.process(audio[i : i + chunk])
            lat.append((time.perf_counter() - t) * 1e3)
        cpu = time.process_time() - c0
        out[name] = {
            'rtf_per_core': cpu / (audio.size / 16000),
            'algorithmic_latency_ms': 1e3 * (anon.latency_samples + chunk) / cfg.sample_rate,
            'chunk_compute_ms': percentiles(lat, (50, 95, 99)),
        }
    return out


def dds_speed(duration: float = 5.0, rate: float = 30.0, reliable: bool = True) -> dict[str, Any]:
    """1280x720 rgb8 + 32FC1 at ``rate`` between two processes (anon_ros.testing.dds_probe), the environment's
    Fast DDS profile (the shipped shared-memory one under scripts/run.sh)."""
    from anon_ros.testing.ros_graph import python_process

    probe = ['-m', 'anon_ros.testing.dds_probe']
    qos = [] if reliable else ['--best-effort']
    expected = round(rate * duration)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / 'probe.json'
        sub_args = [
            *probe,
            'subscribe',
            '--expect',
            str(expected),
            '--out',
            str(out),
            '--timeout',
            str(duration + 60),
            *qos,
        ]
        with measure() as u, python_process(sub_args) as sub:
            # The subscriber must outlive the publisher.
            with python_process([*probe, 'publish', '--rate', str(rate), '--duration', str(duration), *qos]) as pub:
                pub.wait(timeout=duration + 60)
            sub.wait(timeout=duration + 60)
        if not out.is_file():
            log_tail = sub.stdout.read()[-500:] if sub.stdout else ''
            msg = f'the DDS probe subscriber wrote no result: {log_tail}'
            raise RuntimeError(msg)
        result = json.loads(out.read_text())
    import os

    return {
        'size': '1280x720',
        'rate_hz': rate,
        'duration_s': duration,
        'qos': 'reliable' if reliable else 'best effort',
        'profile': os.environ.get('FASTDDS_DEFAULT_PROFILES_FILE') or 'Fast DDS defaults',
        'topics': result,
        'children_peak_rss_mb': peak_rss_mb(children=True),
        'wall_s': u.wall_s,
    }


def e2e_speed(duration: float = 10.0) -> dict[str, Any]:
    """The demo graph (synthetic RGB-D source -> face/voice anonymizers -> recorder, config/demo.yaml) in a child
    process: capture-to-anonymized latency as seen by a subscriber, anonymized fps."""
    from anon_ros.testing.ros_graph import python_process

    with tempfile.TemporaryDirectory() as tmp:
        demo = ['-m', 'anon_ros.cli', 'demo', '--duration', str(duration), '--out', tmp]
        with measure() as u, python_process(demo) as proc:
            proc.wait(timeout=duration + 240)
            log_tail = proc.stdout.read()[-800:] if proc.stdout else ''
        summary_path = Path(tmp) / 'summary.json'
        if not summary_path.is_file():
            msg = f'the demo wrote no summary.json (exit {proc.returncode}): {log_tail}'
            raise RuntimeError(msg)
        s = json.loads(summary_path.read_text())
    return {
        'graph': 'config/demo.yaml (640x480, 15 Hz, 5 people, depth on)',
        'duration_s': duration,
        'latency_ms': s.get('latency_ms'),
        'frames': s.get('frames'),
        'heads': s.get('heads'),
        'children_peak_rss_mb': peak_rss_mb(children=True),
        'wall_s': u.wall_s,
    }


def run_bench(
    frames: int,
    people: tuple[int, ...],
    *,
    dds_duration: float | None,
    e2e_duration: float | None,
    voice_seconds: float,
    threads: int = 2,
    with_peer: bool = True,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Every part of the speed bench; a part that cannot run records its error instead of stopping the others."""
    out: dict[str, Any] = {}
    with measure() as u:
        log('faces ...')
        out['faces'] = face_speed(frames, people, threads=threads, with_peer=with_peer, log=log)
        log('voice ...')
        out['voice'] = voice_speed(voice_seconds)
        if dds_duration:
            log('DDS transport ...')
            try:
                out['dds'] = dds_speed(dds_duration)
            except Exception as err:  # noqa: BLE001 - reported; the other parts stand
                out['dds'] = {'error': f'{type(err).__name__}: {err}'}
        if e2e_duration:
            log('end-to-end demo graph ...')
            try:
                out['e2e'] = e2e_speed(e2e_duration)
            except Exception as err:  # noqa: BLE001 - reported; the other parts stand
                out['e2e'] = {'error': f'{type(err).__name__}: {err}'}
    out['process'] = {**u.as_dict(), 'python': sys.version.split()[0]}
    return out


# -------------------------------------------------------------------------------------------------- report

HEADERS = ['config', 'ms/frame', 'p95 ms', 'fps', 'CPU ms/frame', 'deface fps', 'deface CPU ms/frame']


def _rows(result: dict[str, Any]) -> list[list[str]]:
    from anon_ros.eval.report import num

    rows = []
    for r in result['faces']['rows']:
        d = r.get('deface', {})
        rows.append(
            [
                f'{r["size"]}, {r["people"]} people',
                num(r['total_ms_mean'], 0),
                num(r['total_ms_p95'], 0),
                num(r['fps'], 1),
                num(r['cpu_ms_per_frame'], 0),
                num(d.get('fps'), 1),
                num(d.get('cpu_ms_per_frame'), 0),
            ]
        )
    return rows


def _other_lines(result: dict[str, Any]) -> list[str]:
    from anon_ros.eval.report import num

    v = result['voice']
    lines = [
        (
            f'voice (streaming McAdams, {v["chunk_ms"]:g} ms chunks, {v["seconds"]:.0f} s of {v["speech"]}): '
            f'RTF/core ours {num(v["ours"]["rtf_per_core"], 3)}, B2 {num(v["b2"]["rtf_per_core"], 3)}; '
            f'algorithmic latency {num(v["ours"]["algorithmic_latency_ms"], 1)} ms; chunk compute p95 '
            f'{num(v["ours"]["chunk_compute_ms"]["p95"], 2)} ms'
        )
    ]
    d = result.get('dds')
    if d and 'error' not in d:
        t = d['topics']
        lines.append(
            f'DDS {d["size"]} rgb8 + 32FC1 at {d["rate_hz"]:g} Hz, two processes, {d["qos"]}: '
            + '; '.join(
                f'{k.split("/")[-1]} delivered {100 * x["delivered_fraction"]:.0f} %, p50 '
                f'{num(x["latency_p50_ms"], 1)} ms, p95 {num(x["latency_p95_ms"], 1)} ms'
                for k, x in t.items()
            )
        )
    elif d:
        lines.append(f'DDS: not measured ({d["error"]})')
    e = result.get('e2e')
    if e and 'error' not in e:
        lat = e.get('latency_ms') or {}
        img, aud = lat.get('image_capture_to_anonymized') or {}, lat.get('audio_capture_to_anonymized') or {}
        fr = e.get('frames') or {}
        lines.append(
            f'end to end ({e["graph"]}): image capture->anonymized p50 {num(img.get("p50"), 0)} ms, p95 '
            f'{num(img.get("p95"), 0)} ms; audio p50 {num(aud.get("p50"), 0)} ms; '
            f'{num(fr.get("anonymized_fps"), 1)} fps anonymized'
        )
    elif e:
        lines.append(f'end to end: not measured ({e["error"]})')
    p = result['process']
    lines.append(
        f'process: {p["cpu_s"]:.0f} CPU s over {p["wall_s"]:.0f} s wall ({p["cpu_cores"]:.2f} cores), '
        f'peak RSS {p["peak_rss_mb"]:.0f} MiB'
    )
    return lines


def table(result: dict[str, Any]) -> str:
    """The short console table."""
    from anon_ros.eval.report import text_table

    return text_table(HEADERS, _rows(result)) + '\n' + '\n'.join(_other_lines(result))


def write_report(result: dict[str, Any], out: Any) -> dict[str, str]:
    """report.md and PNGs (per-stage stacked bars; fps ours vs deface)."""
    from anon_ros.eval.report import Markdown, bar_plot, stacked_bar_plot

    rows = result['faces']['rows']
    groups = [f'{r["people"]} p' for r in rows]
    title = f'Face pipeline ms per frame by stage ({rows[0]["size"] if rows else ""})'
    stages = stacked_bar_plot(
        out / 'stages.png', title, groups, {s: [r['stages_ms_mean'][s] for r in rows] for s in FACE_STAGES}, 'ms'
    )
    fps = bar_plot(
        out / 'fps.png',
        'Frames per second (wall clock)',
        groups,
        {'anon_ros': [r['fps'] for r in rows], 'deface': [r.get('deface', {}).get('fps') for r in rows]},
        'fps',
    )
    md = Markdown('Speed')
    md.para(
        f'Command: `{result["command"]}` ({result["elapsed_s"]:.0f} s on {result["machine"]["cpus"]} CPUs, '
        f'{result["machine"]["date"]}). Face pipeline: default configuration '
        f'{result["faces"]["config"]}; peer: {result["faces"]["peer"]}.'
    )
    md.table(HEADERS, _rows(result))
    md.bullets(_other_lines(result))
    md.para(
        "CPU ms/frame is this process's CPU time (all threads) per frame: steadier than wall-clock figures on a "
        'shared machine.'
    )
    md.image(stages, 'stages')
    md.image(fps, 'fps')
    md.write(out / 'report.md')
    return {'report': 'report.md', 'stages_png': stages.name, 'fps_png': fps.name}
