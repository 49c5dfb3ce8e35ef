"""Face anonymization evaluation: privacy (re-identification, raw faces), utility (person recall, over-masking) and
per-frame speed, for anon_ros's :class:`FaceAnonymizer` and its peer deface on the same frames.

Privacy
  * identification among N identities: the attacker (dlib ResNet embedding, :class:`FaceReidentifier`) holds a
    gallery of one original photo per identity and is given the true face box of each probe; rank-1 rate of the
    original composited faces (sanity, should be near 100 %) and of the anonymized ones (chance is 1/N);
  * verification: embedding distance between the original and the anonymized face (same box); under 0.6 (dlib's
    threshold) the attacker still calls them the same person;
  * raw faces: a face is *missed* when less than half of its face ellipse (inscribed in the brows-to-chin box, within
    the visible head) is in the anonymizer's mask; frames with any missed face; and, stricter, frames with any raw
    ground-truth head pixel. Ground truth is synthetic (scenes, stream) or, for the user's own images, a strong
    detector's output on the original (CenterFace at full resolution, confidence 0.5).
Utility
  * person recall kept: a downstream YOLO person detector (the YOLO11n-pose model at 640, confidence 0.25) on the
    original and the anonymized frame, matched to ground-truth person boxes at IoU >= 0.5;
  * over-masking: pixels changed outside the ground-truth head regions.
"""

from __future__ import annotations

import contextlib
import io
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from anon_ros.core.attacks import MATCH_THRESHOLD
from anon_ros.core.detection import CenterFaceDetector, YoloDetector
from anon_ros.core.face_pipeline import FaceAnonymizer, FaceAnonymizerConfig
from anon_ros.core.heads import box_iou
from anon_ros.core.metrics import CoverageTally, head_coverage, percentiles
from anon_ros.eval.datasets import FaceFrame, FaceSet

#: deface 1.5.0 CLI defaults.
DEFACE_THRESHOLD = 0.2
DEFACE_MASK_SCALE = 1.3
#: Faces narrower than this are not attacked (dlib's embedding of the original is unreliable below it).
MIN_ATTACK_FACE_PX = 40
#: A face is missed when less than this fraction of its face ellipse is anonymized.
MISSED_BELOW = 0.5
PERSON_IOU = 0.5
STAGES = ('depth_prep', 'person_det', 'face_det', 'heads_track', 'depth_mask', 'ensemble')


# --------------------------------------------------------------------------------------------------- peers


@dataclass(frozen=True)
class Anonymized:
    """One method's output on one frame: the image, the mask of pixels it meant to replace, the time it took."""

    image: np.ndarray
    mask: np.ndarray
    ms: float
    stages_ms: dict[str, float] = field(default_factory=dict)
    failed: bool = False


def _deface_region(box: np.ndarray, hw: tuple[int, int], mask_scale: float) -> tuple[int, int, int, int]:
    """deface.deface.anonymize_frame's box arithmetic: int box, scale_bb, clip to the frame (last row/col excluded)."""
    x1, y1, x2, y2 = (int(v) for v in box[:4])
    s = mask_scale - 1.0
    h, w = y2 - y1, x2 - x1
    x1, y1, x2, y2 = (int(v) for v in np.round([x1 - w * s, y1 - h * s, x2 + w * s, y2 + h * s]))
    return max(0, x1), max(0, y1), min(hw[1] - 1, x2), min(hw[0] - 1, y2)


def _deface_ellipse(hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates of deface's 'bounding ellipse' of a (h, w) box (skimage.draw.ellipse as deface calls it)."""
    import skimage.draw

    h, w = hw
    ey, ex = skimage.draw.ellipse(h // 2, w // 2, h // 2, w // 2)
    keep = (ey >= 0) & (ey < h) & (ex >= 0) & (ex < w)
    return ey[keep], ex[keep]


class DefacePeer:
    """deface 1.5.0 with its CLI defaults (CenterFace on the full frame, threshold 0.2, ellipse blur of each box
    scaled 1.3). Runs the installed ``deface`` package when it imports; otherwise the same algorithm through our
    :class:`CenterFaceDetector` (``implementation`` says which)."""

    def __init__(self, threads: int = 2, use_package: bool = True) -> None:
        self._cf: Any = None
        self._anonymize_frame: Any = None
        if use_package:
            try:
                import deface  # type: ignore[import-untyped,import-not-found,unused-ignore]
                from deface.centerface import CenterFace  # type: ignore[import-untyped,import-not-found,unused-ignore]
                from deface.deface import anonymize_frame  # type: ignore[import-untyped,import-not-found,unused-ignore]

                with contextlib.redirect_stdout(io.StringIO()):  # it prints the execution provider
                    self._cf = CenterFace(in_shape=None, backend='auto')
                self._anonymize_frame = anonymize_frame
                self.implementation = (f'the deface {deface.__version__} package (deface.centerface.CenterFace, '
                                       f'backend {self._cf.backend}, + deface.deface.anonymize_frame)')
                self.package = True
            except ImportError as err:
                self._fallback_reason = str(err)
        if self._cf is None:
            self._det = CenterFaceDetector(input_size=32, conf=DEFACE_THRESHOLD, threads=threads)
            reason = getattr(self, '_fallback_reason', 'not asked for')
            self.implementation = (f"deface 1.5.0's algorithm through anon_ros's CenterFaceDetector (the deface "
                                   f'package is not installed: {reason})')
            self.package = False

    def detect(self, rgb: np.ndarray) -> np.ndarray:
        """Face boxes (n, 4) xyxy as deface finds them."""
        if self._cf is not None:
            dets, _ = self._cf(rgb, threshold=DEFACE_THRESHOLD)
            return np.asarray(dets, np.float32).reshape(-1, 5)[:, :4]
        self._det.input_size = int(math.ceil(max(rgb.shape[:2]) / 32) * 32)  # deface: full resolution
        return self._det(rgb).boxes

    def __call__(self, rgb: np.ndarray) -> Anonymized:
        t0 = time.perf_counter()
        boxes = self.detect(rgb)
        hw = (rgb.shape[0], rgb.shape[1])
        out = rgb.copy()
        if self._cf is not None:
            dets = np.column_stack([boxes, np.ones(len(boxes), np.float32)])
            self._anonymize_frame(dets, out, mask_scale=DEFACE_MASK_SCALE, replacewith='blur', ellipse=True,
                                  draw_scores=False, replaceimg=None, mosaicsize=20)
        else:
            for b in boxes:
                x1, y1, x2, y2 = _deface_region(b, hw, DEFACE_MASK_SCALE)
                if x2 <= x1 or y2 <= y1:
                    continue
                roi = out[y1:y2, x1:x2]
                blurred = cv2.blur(roi, (max(1, (x2 - x1) // 2), max(1, (y2 - y1) // 2)))
                ey, ex = _deface_ellipse(roi.shape[:2])
                roi[ey, ex] = blurred[ey, ex]
        ms = (time.perf_counter() - t0) * 1e3
        mask = np.zeros(hw, bool)
        for b in boxes:
            x1, y1, x2, y2 = _deface_region(b, hw, DEFACE_MASK_SCALE)
            if x2 > x1 and y2 > y1:
                ey, ex = _deface_ellipse((y2 - y1, x2 - x1))
                mask[ey + y1, ex + x1] = True
        return Anonymized(out, mask, ms)


class OursMethod:
    """anon_ros's FaceAnonymizer (default configuration), reset at the start of every sequence."""

    def __init__(self, config: FaceAnonymizerConfig | None = None) -> None:
        self.anonymizer = FaceAnonymizer(config or FaceAnonymizerConfig())
        self._sequence: str | None = None

    def __call__(self, frame: FaceFrame) -> Anonymized:
        if frame.sequence != self._sequence:
            self.anonymizer.reset()
            self._sequence = frame.sequence
        t0 = time.perf_counter()
        res = self.anonymizer.process(frame.rgb, frame.depth_m)
        ms = (time.perf_counter() - t0) * 1e3
        return Anonymized(res.image, res.mask, ms, dict(res.timings_ms), res.failed)


# -------------------------------------------------------------------------------------------------- metrics


def face_ellipse_mask(box: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Boolean mask of the ellipse inscribed in a face box."""
    m = np.zeros(hw, np.uint8)
    x1, y1, x2, y2 = (float(v) for v in box)
    centre = (round((x1 + x2) / 2), round((y1 + y2) / 2))
    axes = (max(1, round((x2 - x1) / 2)), max(1, round((y2 - y1) / 2)))
    cv2.ellipse(m, centre, axes, 0, 0, 360, 1, -1)
    return m.astype(bool)


def head_mask_from_faces(boxes: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Approximate head regions around face boxes, drawn like the synthetic scenes' head ellipses (axes 0.72 x face
    width, 0.95 x face height, centred 0.15 face heights above the face centre)."""
    m = np.zeros(hw, np.uint8)
    for x1, y1, x2, y2 in np.asarray(boxes, np.float32).reshape(-1, 4):
        fw, fh = x2 - x1, y2 - y1
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2 - 0.15 * fh
        cv2.ellipse(m, (round(cx), round(cy)), (max(1, round(0.72 * fw)), max(1, round(0.95 * fh))),
                    0, 0, 360, 1, -1)
    return m.astype(bool)


def _area(b: np.ndarray) -> np.ndarray:
    return (b[:, 2] - b[:, 0]).clip(0) * (b[:, 3] - b[:, 1]).clip(0)


def match_recall(reference: np.ndarray, found: np.ndarray, iou: float = PERSON_IOU) -> int:
    """How many reference boxes a found box matches at IoU >= ``iou`` (greedy, one to one)."""
    if len(reference) == 0 or len(found) == 0:
        return 0
    m = box_iou(np.asarray(reference, np.float32), np.asarray(found, np.float32))
    hits = 0
    used: set[int] = set()
    for i in np.argsort(-m.max(axis=1)):
        for j in np.argsort(-m[i]):
            if m[i, j] < iou:
                break
            if int(j) not in used:
                used.add(int(j))
                hits += 1
                break
    return hits


@dataclass
class MethodTally:
    """Everything counted for one method on one data set."""

    coverage: CoverageTally = field(default_factory=CoverageTally)
    faces: int = 0
    faces_missed: int = 0
    face_coverage: list[float] = field(default_factory=list)
    frames_with_missed_face: list[str] = field(default_factory=list)
    frames_failed: int = 0
    distances: list[float] = field(default_factory=list)
    rank1_hits: int = 0
    probes: int = 0
    persons_reference: int = 0
    persons_found: int = 0
    changed_outside: int = 0
    outside_pixels: int = 0
    head_pixels: int = 0
    ms: list[float] = field(default_factory=list)
    stages_ms: dict[str, list[float]] = field(default_factory=dict)

    def summary(self, frames: int, ground_truth: bool) -> dict[str, Any]:
        dist = np.asarray(self.distances, float)
        frame_ms = np.asarray(self.ms, float)
        total_s = float(frame_ms.sum()) / 1e3
        return {
            'privacy': {
                'ground_truth': 'synthetic' if ground_truth else 'strong detector on the original',
                'faces': self.faces,
                'faces_missed': self.faces_missed,
                'face_miss_rate': self.faces_missed / self.faces if self.faces else None,
                'frames': frames,
                'frames_with_missed_face': len(self.frames_with_missed_face),
                'frames_with_missed_face_rate': len(self.frames_with_missed_face) / frames if frames else None,
                'missed_face_frames': self.frames_with_missed_face[:50],
                'frames_with_raw_head_pixels': len(self.coverage.frames_with_raw_head_pixels),
                'frames_with_raw_head_pixels_rate': (len(self.coverage.frames_with_raw_head_pixels) / frames
                                                     if frames else None),
                'head_pixel_coverage': self.coverage.fraction,
                'face_coverage_mean': float(np.mean(self.face_coverage)) if self.face_coverage else None,
                'frames_failed_obscured': self.frames_failed,
                'attacked_faces': int(dist.size),
                'distance_to_original': {'mean': float(dist.mean()) if dist.size else None,
                                         **percentiles(dist, (10, 50, 90))},
                'identity_kept_rate': float(np.mean(dist < MATCH_THRESHOLD)) if dist.size else None,
                'rank1_probes': self.probes,
                'rank1_rate': self.rank1_hits / self.probes if self.probes else None,
            },
            'utility': {
                'persons_reference': self.persons_reference,
                'persons_found': self.persons_found,
                'person_recall': self.persons_found / self.persons_reference if self.persons_reference else None,
                'changed_pixels_outside_heads': (self.changed_outside / self.outside_pixels
                                                 if self.outside_pixels else None),
                'changed_outside_per_head_pixel': (self.changed_outside / self.head_pixels
                                                   if self.head_pixels else None),
            },
            'speed': {
                'frames': int(frame_ms.size),
                'ms_mean': float(frame_ms.mean()) if frame_ms.size else None,
                **{f'ms_{k}': v for k, v in percentiles(frame_ms, (50, 95)).items()},
                'fps': frame_ms.size / total_s if total_s > 0 else None,
                'stages_ms_mean': {k: float(np.mean(v)) for k, v in self.stages_ms.items()},
            },
        }


@dataclass
class FaceEvalResult:
    """Per data set: the tallies per method, plus what the report needs to draw an example."""

    sets: dict[str, dict[str, Any]]
    identification: dict[str, Any]
    example: tuple[np.ndarray, dict[str, np.ndarray]] | None
    peer: str
    distances: dict[str, list[float]]


def evaluate_faces(
    sets: list[FaceSet],
    *,
    threads: int = 2,
    with_peer: bool = True,
    deface_package: bool = True,
    log: Callable[[str], None] = print,
) -> FaceEvalResult:
    """Run anon_ros and (``with_peer``) deface on every frame of every set and tally privacy, utility and speed."""
    import warnings

    from anon_ros.core.attacks import FaceReidentifier

    with warnings.catch_warnings():  # face_recognition_models imports the deprecated pkg_resources
        warnings.simplefilter('ignore')
        attacker = FaceReidentifier()
    ours = OursMethod(FaceAnonymizerConfig(threads=threads))
    peer = DefacePeer(threads, use_package=deface_package) if with_peer else None
    person_det = YoloDetector(conf=0.25, input_size=640, threads=threads)
    strong: CenterFaceDetector | None = None
    methods = ['ours'] + (['deface'] if peer is not None else [])
    out_sets: dict[str, dict[str, Any]] = {}
    ident: dict[str, Any] = {}
    all_dist: dict[str, list[float]] = {m: [] for m in methods}
    example = None
    for fs in sets:
        tallies = {m: MethodTally() for m in methods}
        orig_tally = MethodTally()  # rank-1 of the original faces (sanity)
        gallery = {}
        if fs.gallery:
            gallery = {g.identity: attacker.embed(np.ascontiguousarray(g.image), g.face_box) for g in fs.gallery}
        g_names = list(gallery)
        g_mat = np.stack([gallery[n] for n in g_names]) if gallery else np.zeros((0, 128))
        t_set = time.perf_counter()
        for fi, frame in enumerate(fs.frames):
            hw = (frame.rgb.shape[0], frame.rgb.shape[1])
            face_boxes, identities = frame.face_boxes, frame.identities
            head_gt, person_ref = frame.head_mask, frame.person_boxes
            if head_gt is None:  # the user's data: a strong detector on the original is the reference
                if strong is None:
                    strong = CenterFaceDetector(input_size=32, conf=0.5, threads=threads)
                strong.input_size = int(math.ceil(max(hw) / 32) * 32)
                face_boxes = strong(frame.rgb).boxes
                identities = (None,) * len(face_boxes)
                head_gt = head_mask_from_faces(face_boxes, hw)
            if person_ref is None:
                person_ref = person_det(frame.rgb).boxes
            else:
                full = person_ref.copy()
                clipped = person_ref.copy()
                clipped[:, 0::2] = clipped[:, 0::2].clip(0, hw[1])
                clipped[:, 1::2] = clipped[:, 1::2].clip(0, hw[0])
                person_ref = clipped[_area(clipped) >= 0.5 * np.maximum(_area(full), 1)]
            outputs: dict[str, Anonymized] = {'ours': ours(frame)}
            if peer is not None:
                outputs['deface'] = peer(frame.rgb)
            if example is None and len(face_boxes):
                example = (frame.rgb.copy(), {m: o.image.copy() for m, o in outputs.items()})
            # Faces: which ones each method left raw; the attacker on the attackable ones.
            attackable = [i for i, b in enumerate(face_boxes)
                          if b[2] - b[0] >= MIN_ATTACK_FACE_PX and b[0] >= 0 and b[1] >= 0 and b[2] <= hw[1]
                          and b[3] <= hw[0]]
            orig_emb = {i: attacker.embed(frame.rgb, face_boxes[i]) for i in attackable}
            for i in attackable:
                if identities[i] is not None and g_names:
                    orig_tally.probes += 1
                    orig_tally.rank1_hits += int(g_names[int(np.argmin(np.linalg.norm(g_mat - orig_emb[i], axis=1)))]
                                                 == identities[i])
            for m, o in outputs.items():
                t = tallies[m]
                t.ms.append(o.ms)
                for s, v in o.stages_ms.items():
                    t.stages_ms.setdefault(s, []).append(v)
                t.frames_failed += int(o.failed)
                t.coverage.add(head_coverage(head_gt, o.mask), fi)
                missed_here = False
                for b in face_boxes:
                    region = face_ellipse_mask(b, hw) & (head_gt if frame.head_mask is not None else True)
                    n = int(region.sum())
                    if n == 0:
                        continue
                    frac = float(np.count_nonzero(region & o.mask)) / n
                    t.faces += 1
                    t.face_coverage.append(frac)
                    if frac < MISSED_BELOW:
                        t.faces_missed += 1
                        missed_here = True
                if missed_here:
                    t.frames_with_missed_face.append(frame.name)
                for i in attackable:
                    emb = attacker.embed(np.ascontiguousarray(o.image), face_boxes[i])
                    d = float(np.linalg.norm(emb - orig_emb[i]))
                    t.distances.append(d)
                    all_dist[m].append(d)
                    if identities[i] is not None and g_names:
                        t.probes += 1
                        guess = g_names[int(np.argmin(np.linalg.norm(g_mat - emb, axis=1)))]
                        t.rank1_hits += int(guess == identities[i])
                # Utility.
                t.persons_reference += len(person_ref)
                t.persons_found += match_recall(person_ref, person_det(o.image).boxes)
                changed = np.any(o.image != frame.rgb, axis=2)
                outside = ~head_gt
                t.changed_outside += int(np.count_nonzero(changed & outside))
                t.outside_pixels += int(np.count_nonzero(outside))
                t.head_pixels += int(np.count_nonzero(head_gt))
            orig_tally.persons_reference += len(person_ref)
            orig_tally.persons_found += match_recall(person_ref, person_det(frame.rgb).boxes)
            if (fi + 1) % 10 == 0 or fi + 1 == len(fs.frames):
                log(f'  {fs.name}: {fi + 1}/{len(fs.frames)} frames ({time.perf_counter() - t_set:.0f} s)')
        res = {m: t.summary(len(fs.frames), fs.ground_truth) for m, t in tallies.items()}
        res['original'] = {
            'utility': {'persons_reference': orig_tally.persons_reference, 'persons_found': orig_tally.persons_found,
                        'person_recall': (orig_tally.persons_found / orig_tally.persons_reference
                                          if orig_tally.persons_reference else None)},
            'privacy': {'rank1_probes': orig_tally.probes,
                        'rank1_rate': orig_tally.rank1_hits / orig_tally.probes if orig_tally.probes else None},
        }
        for m in methods:
            rec, rec0 = res[m]['utility']['person_recall'], res['original']['utility']['person_recall']
            res[m]['utility']['person_recall_kept'] = rec / rec0 if rec is not None and rec0 else None
        out_sets[fs.name] = {
            'description': fs.description, 'frames': len(fs.frames), 'ground_truth': fs.ground_truth,
            'notes': fs.notes, 'methods': res,
        }
        if g_names:
            ident = {
                'set': fs.name,
                'identities': g_names,
                'n_identities': len(g_names),
                'chance': 1.0 / len(g_names),
                'gallery': [{'identity': g.identity, 'source': g.source, 'face_box': list(g.face_box)}
                            for g in fs.gallery],
                'probes': orig_tally.probes,
                'min_face_px': MIN_ATTACK_FACE_PX,
                'rank1': {'original': res['original']['privacy']['rank1_rate'],
                          **{m: res[m]['privacy']['rank1_rate'] for m in methods}},
            }
    return FaceEvalResult(out_sets, ident, example, peer.implementation if peer else 'none', all_dist)


# -------------------------------------------------------------------------------------------------- report


def _rows(result: dict[str, Any]) -> list[list[str]]:
    from anon_ros.eval.report import num, pct

    rows = []
    for set_name, s in result['sets'].items():
        for m in ('ours', 'deface'):
            if m not in s['methods']:
                continue
            p, u, sp = s['methods'][m]['privacy'], s['methods'][m]['utility'], s['methods'][m]['speed']
            rows.append([
                f'{set_name}/{m}', pct(p['rank1_rate']), num(p['distance_to_original']['p50']),
                pct(p['identity_kept_rate']), f"{p['faces_missed']}/{p['faces']}",
                f"{p['frames_with_missed_face']}/{p['frames']}", f"{p['frames_with_raw_head_pixels']}/{p['frames']}",
                pct(u['person_recall_kept']), pct(u['changed_pixels_outside_heads']), num(sp['ms_mean'], 0),
            ])
    return rows


HEADERS = ['set/method', 'rank-1', 'dist p50', 'id kept', 'faces missed', 'frames w/ missed face',
           'frames w/ raw head px', 'person recall kept', 'changed outside heads', 'ms/frame']


def table(result: dict[str, Any]) -> str:
    """The short console table."""
    from anon_ros.eval.report import pct, text_table

    ident = result.get('identification') or {}
    head = ''
    if ident:
        r = ident['rank1']
        head = (f"identification among {ident['n_identities']} identities ({ident['probes']} probes, chance "
                f"{pct(ident['chance'])}): original {pct(r['original'])}, ours {pct(r.get('ours'))}, "
                f"deface {pct(r.get('deface'))}\n")
    return head + text_table(HEADERS, _rows(result))


def write_report(result: dict[str, Any], ev: FaceEvalResult, out: Any) -> dict[str, str]:
    """report.md and PNGs (rank-1 bars, distance histogram, example frame) next to results.json."""
    from anon_ros.eval.report import Markdown, bar_plot, hist_plot, pct

    files: dict[str, str] = {}
    ident = result.get('identification') or {}
    methods = [m for m in ('ours', 'deface') if any(m in s['methods'] for s in result['sets'].values())]
    img_rank = None
    if ident:
        groups = ['original', *methods]
        title = f"Rank-1 identification among {ident['n_identities']} identities (chance {pct(ident['chance'])})"
        img_rank = bar_plot(out / 'identification.png', title, groups,
                            {'rank-1': [ident['rank1'].get(g) for g in groups]}, 'rate', ylim=(0, 1.05), percent=True)
        files['identification_png'] = img_rank.name
    img_dist = hist_plot(out / 'distances.png', 'dlib embedding distance, original vs anonymized face',
                         {m: ev.distances.get(m, []) for m in methods}, 'distance', vline=MATCH_THRESHOLD,
                         vlabel='same-person threshold 0.6')
    files['distances_png'] = img_dist.name
    set_names = list(result['sets'])
    img_priv = bar_plot(out / 'raw_faces.png', 'Frames with a missed face / with any raw head pixel', set_names,
                        {f'{m} {k}': [result['sets'][s]['methods'].get(m, {}).get('privacy', {}).get(f'{key}_rate')
                                      for s in set_names]
                         for m in methods for k, key in (('missed face', 'frames_with_missed_face'),
                                                         ('raw head px', 'frames_with_raw_head_pixels'))},
                        'frames', ylim=(0, 1.05), percent=True)
    files['raw_faces_png'] = img_priv.name
    img_util = bar_plot(out / 'utility.png', 'Utility: person recall kept, pixels changed outside heads', set_names,
                        {f'{m} {k}': [result['sets'][s]['methods'].get(m, {}).get('utility', {}).get(key)
                                      for s in set_names]
                         for m in methods for k, key in (('recall kept', 'person_recall_kept'),
                                                         ('changed outside', 'changed_pixels_outside_heads'))},
                        'fraction', ylim=(0, 1.1), percent=True)
    files['utility_png'] = img_util.name
    img_ex = None
    if ev.example is not None:
        orig, outs = ev.example
        import matplotlib

        matplotlib.use('Agg', force=True)
        import matplotlib.pyplot as plt

        panels = [('original', orig), *outs.items()]
        fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 2.6), dpi=100)
        for ax, (name, im) in zip(np.atleast_1d(axes), panels, strict=True):
            ax.imshow(im)
            ax.set_title(name, fontsize=9)
            ax.axis('off')
        fig.tight_layout()
        img_ex = out / 'example.png'
        fig.savefig(img_ex)
        plt.close(fig)
        files['example_png'] = img_ex.name
    md = Markdown('Face anonymization: privacy, utility, speed')
    md.para(f"Command: `{result['command']}` ({result['elapsed_s']:.0f} s on {result['machine']['cpus']} CPUs, "
            f"{result['machine']['date']}).")
    md.para(f"Peer: deface 1.5.0 with its defaults (threshold {DEFACE_THRESHOLD}, ellipse blur, mask scale "
            f"{DEFACE_MASK_SCALE}), run as {result['peer']}.")
    md.bullets([f"**{n}**: {s['description']}" for n, s in result['sets'].items()]
               + [f"note: {x}" for s in result['sets'].values() for x in s['notes']])
    md.heading('Summary')
    md.table(HEADERS, _rows(result))
    md.para(
        f'rank-1: the attacker (dlib ResNet embedding, given the true face box) names the identity of an anonymized '
        f'face from a gallery of one original photo per identity; dist: embedding distance original vs anonymized '
        f'(same box; < {MATCH_THRESHOLD} = same person, "id kept"); faces missed: less than {MISSED_BELOW:.0%} of the '
        f'face ellipse anonymized; raw head px: any ground-truth head pixel (hair included) left untouched; person '
        f'recall kept: YOLO11n person recall on anonymized frames / on originals (IoU >= {PERSON_IOU}); changed '
        f'outside heads: share of non-head pixels altered. Faces under {MIN_ATTACK_FACE_PX} px are not attacked.')
    if ident:
        md.heading('Identification among N identities')
        md.para(f"{ident['n_identities']} identities ({', '.join(ident['identities'])}); gallery: one original photo "
                f"each; {ident['probes']} probes (faces >= {ident['min_face_px']} px in the scenes). Rank-1: "
                + ', '.join(f'{k} {pct(v)}' for k, v in ident['rank1'].items()) + f"; chance {pct(ident['chance'])}.")
        md.image(img_rank, 'identification')
    md.image(img_dist, 'distances')
    md.image(img_priv, 'raw faces')
    md.image(img_util, 'utility')
    md.image(img_ex, 'example')
    md.write(out / 'report.md')
    files['report'] = 'report.md'
    return files
