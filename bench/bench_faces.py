"""Face pipeline benchmark: per-stage ms and end-to-end fps on synthetic RGB-D scenes with real people.

    python bench/bench_faces.py [--frames 30] [--detect-every 3]

Sizes 800x600 and 1280x720, 1/5/10 people. The peer baseline is deface 1.5.0's algorithm on the same frames
(CenterFace on the full frame, threshold 0.2, elliptical blur of each face box scaled 1.3), run with our
CenterFace wrapper so deface and its imageio/ffmpeg dependencies need not be installed.
"""

from __future__ import annotations

import argparse
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument('--frames', type=int, default=30)
    ap.add_argument('--detect-every', type=int, default=3)
    ap.add_argument('--detector-size', type=int, default=640)
    ap.add_argument('--no-peer', action='store_true')
    args = ap.parse_args()
    cfg = FaceAnonymizerConfig(detect_every=args.detect_every, detector_size=args.detector_size)
    an = FaceAnonymizer(cfg)
    peer = None if args.no_peer else CenterFaceDetector(input_size=32, conf=0.2)
    stages = ('depth_prep', 'person_det', 'face_det', 'heads_track', 'depth_mask', 'ensemble')
    print(f'detect_every={cfg.detect_every} detector_size={cfg.detector_size} face_detector_size={cfg.face_detector_size}')
    print(f'{"size":>9} {"n":>3} ' + ' '.join(f'{s:>11}' for s in stages) + f' {"mean ms":>8} {"p95 ms":>7} {"fps":>6} {"peer fps":>8}')
    for size in ((600, 800), (720, 1280)):
        for n in (1, 5, 10):
            rgbs, deps = frames_for(n, size, args.frames)
            an.reset()
            an.process(rgbs[0], deps[0])  # warm-up
            an.reset()
            totals, sums = [], dict.fromkeys(stages, 0.0)
            t0 = time.perf_counter()
            for rgb, dep in zip(rgbs, deps):
                res = an.process(rgb, dep)
                assert not res.failed, res.error
                totals.append(res.timings_ms['total'])
                for s in stages:
                    sums[s] += res.timings_ms.get(s, 0.0)
            wall = time.perf_counter() - t0
            peer_fps = float('nan')
            if peer is not None:
                peer.input_size = int(np.ceil(max(size) / 32) * 32)  # deface: full resolution
                t1 = time.perf_counter()
                for rgb in rgbs[:10]:
                    deface_like(rgb, peer)
                peer_fps = 10 / (time.perf_counter() - t1)
            per = ' '.join(f'{sums[s] / len(rgbs):11.2f}' for s in stages)
            print(
                f'{size[1]}x{size[0]:<4} {n:>3} {per} {np.mean(totals):8.1f} {np.percentile(totals, 95):7.1f} '
                f'{len(rgbs) / wall:6.1f} {peer_fps:8.1f}',
                flush=True,
            )


if __name__ == '__main__':
    main()
