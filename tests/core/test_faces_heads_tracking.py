"""Head boxes from keypoints/person boxes/faces, and tracking that never lets a head go raw."""

from __future__ import annotations

import numpy as np
import pytest

from anon_ros.core.detection import Detections, FaceDetections
from anon_ros.core.errors import InputError
from anon_ros.core.heads import (
    HeadBoxes,
    HeadConfig,
    HeadSource,
    heads_from_faces,
    heads_from_people,
    merge_heads,
)
from anon_ros.core.tracking import HeadTracker, TrackerConfig


def person(box: tuple[float, ...], face: dict[int, tuple[float, float]] | None = None) -> Detections:
    kp = np.zeros((1, 17, 3), np.float32)
    for i, (x, y) in (face or {}).items():
        kp[0, i] = (x, y, 0.9)
    return Detections(np.asarray([box], np.float32), np.ones(1, np.float32), kp)


def contains(outer: np.ndarray, inner: tuple[float, float, float, float]) -> bool:
    return bool(outer[0] <= inner[0] and outer[1] <= inner[1] and outer[2] >= inner[2] and outer[3] >= inner[3])


@pytest.mark.parametrize('scale', [0.25, 1.0, 3.0])  # heads ~20 px to ~240 px
def test_head_from_face_keypoints_covers_the_head(scale: float) -> None:
    s = scale
    # Frontal face 80 px wide (x 160..240): eyes at y=100, head from y~60 to ~165.
    kp = {0: (200 * s, 118 * s), 1: (215 * s, 100 * s), 2: (185 * s, 100 * s), 3: (238 * s, 105 * s), 4: (162 * s, 105 * s),
          5: (270 * s, 200 * s), 6: (130 * s, 200 * s)}
    hb = heads_from_people(person((100 * s, 50 * s, 300 * s, 600 * s), kp), (int(700 * s), int(400 * s)), HeadConfig())
    assert hb.sources[0] == HeadSource.KEYPOINTS
    assert contains(hb.boxes[0], (160 * s, 60 * s, 240 * s, 165 * s))
    w = hb.boxes[0, 2] - hb.boxes[0, 0]
    assert w < 2.0 * 80 * s  # not absurdly large


def test_profile_face_still_gets_a_full_head() -> None:
    kp = {0: (190, 118), 1: (200, 100), 3: (235, 105)}  # one eye, one ear: eye span unusable
    hb = heads_from_people(person((120, 50, 300, 600), kp), (700, 400), HeadConfig())
    assert contains(hb.boxes[0], (175, 65, 240, 160))


def test_no_face_keypoints_falls_back_to_top_of_person() -> None:
    hb = heads_from_people(person((100, 50, 200, 450)), (500, 300), HeadConfig())
    assert hb.sources[0] == HeadSource.PERSON_BOX
    assert contains(hb.boxes[0], (125, 50, 175, 110))


def test_face_detection_becomes_larger_head_box_and_merges_with_pose_head() -> None:
    faces = FaceDetections(np.asarray([[180, 90, 220, 140]], np.float32), np.ones(1, np.float32), np.zeros((1, 5, 2), np.float32))
    hf = heads_from_faces(faces, (400, 400), HeadConfig())
    assert hf.sources[0] == HeadSource.FACE and contains(hf.boxes[0], (175, 70, 225, 145))
    hp = heads_from_people(person((150, 60, 250, 400), {0: (200, 120), 1: (210, 108), 2: (190, 108)}), (400, 400), HeadConfig())
    merged = merge_heads(HeadBoxes.concat([hp, hf]))
    assert len(merged) == 1 and contains(merged.boxes[0], tuple(hf.boxes[0])) and contains(merged.boxes[0], tuple(hp.boxes[0]))


def test_nothing_found_is_empty() -> None:
    assert len(heads_from_people(Detections.empty(), (10, 10), HeadConfig())) == 0
    assert len(heads_from_faces(FaceDetections.empty(), (10, 10), HeadConfig())) == 0
    assert len(merge_heads(HeadBoxes.empty())) == 0


@pytest.mark.parametrize(
    ('factory', 'match'),
    [
        (lambda: HeadBoxes(np.zeros((2, 3), np.float32), np.zeros(2), np.zeros(2)), r'\(N, 4\)'),
        (lambda: HeadBoxes(np.zeros((2, 4), np.float32), np.zeros(3), np.zeros(2)), 'scores and sources'),
        (lambda: Detections(np.zeros((1, 4)), np.zeros(1), np.zeros((2, 17, 3))), 'keypoints'),
        (lambda: HeadConfig(margin=0.9), 'never shrink'),
        (lambda: TrackerConfig(max_age=-1), 'max_age'),
    ],
)
def test_value_objects_validate(factory: object, match: str) -> None:
    with pytest.raises(InputError, match=match):
        factory()  # type: ignore[operator]


def det(x: float, y: float = 100.0, s: float = 40.0) -> HeadBoxes:
    return HeadBoxes(np.asarray([[x, y, x + s, y + s]], np.float32), np.ones(1, np.float32), np.zeros(1, np.int8))


def test_track_survives_missed_detections_then_expires() -> None:
    tr = HeadTracker(TrackerConfig(max_age=5))
    hw = (480, 640)
    tr.update(det(100), hw)
    for _ in range(5):
        out = tr.update(HeadBoxes.empty(), hw)  # detector ran but missed
        assert len(out) == 1 and contains(out.boxes[0], (100, 100, 140, 140))
    assert len(tr.update(HeadBoxes.empty(), hw)) == 0


def test_fast_head_stays_covered_between_detections() -> None:
    tr = HeadTracker(TrackerConfig())
    hw = (480, 1280)
    speed = 12.0  # px per frame: 30 % of the head's width, 360 px/s at 30 fps
    x = 100.0
    for frame in range(40):
        true = (x, 100.0, x + 40, 140.0)
        out = tr.update(det(x), hw) if frame % 4 == 0 else tr.predict(hw)
        assert any(contains(b, true) for b in out.boxes), f'frame {frame}: head at {true} uncovered by {out.boxes}'
        x += speed


def test_accelerating_and_reversing_head_stays_covered() -> None:
    tr = HeadTracker(TrackerConfig())
    hw = (480, 1280)
    # 8 px/frame to the right, then braking at 3 px/frame^2 to 10 px/frame to the left.
    xs, x, v = [], 300.0, 8.0
    for f in range(30):
        xs.append(x)
        if f >= 10:
            v = max(v - 3.0, -10.0)
        x += v
    for frame, x in enumerate(xs):
        out = tr.update(det(x), hw) if frame % 3 == 0 else tr.predict(hw)
        assert any(contains(b, (x, 100, x + 40, 140)) for b in out.boxes), frame


def test_two_heads_keep_separate_tracks_and_no_flicker() -> None:
    tr = HeadTracker(TrackerConfig())
    hw = (480, 640)
    both = HeadBoxes.concat([det(100), det(400)])
    counts = []
    for frame in range(12):
        # One detection of the second head is missed now and then: the output count must not drop.
        found = both if frame % 3 else det(100)
        counts.append(len(tr.update(found, hw)))
    assert counts[1:] == [2] * 11


def test_far_head_inside_a_near_head_box_is_not_merged_into_it() -> None:
    """A small far head inside a near head's box keeps its own box (a union would get the near head's depth band)."""
    near = (100.0, 100.0, 260.0, 300.0)
    far = (110.0, 110.0, 150.0, 160.0)  # mostly inside, centre far from the near head's centre
    face_of_near = (140.0, 140.0, 220.0, 250.0)  # the same head found by the face detector: merged
    hb = HeadBoxes(np.asarray([near, far, face_of_near], np.float32), np.ones(3, np.float32), np.zeros(3, np.int8))
    merged = merge_heads(hb)
    assert len(merged) == 2
    assert any(np.allclose(b, far) for b in merged.boxes)


@pytest.mark.parametrize('fw', [16.0, 40.0, 120.0])
def test_face_detection_head_covers_the_head_ellipse(fw: float) -> None:
    """The head around a face box (brows to chin) as the synthetic scenes draw it: an ellipse 0.72 face widths by
    0.95 face heights about a centre 0.15 face heights above the face's. The head's ellipse region must hold it."""
    from anon_ros.core.depth_mask import DepthMaskConfig, head_masks

    fh = 1.25 * fw
    x1, y1 = 200.0, 200.0
    faces = FaceDetections(np.asarray([[x1, y1, x1 + fw, y1 + fh]], np.float32), np.ones(1, np.float32),
                           np.zeros((1, 5, 2), np.float32))
    hw = (800, 800)
    mask = head_masks(None, heads_from_faces(faces, hw, HeadConfig()), hw, DepthMaskConfig())
    yy, xx = np.mgrid[: hw[0], : hw[1]] + 0.5
    cx, cy = x1 + fw / 2, y1 + fh / 2 - 0.15 * fh
    head = ((xx - cx) / (0.72 * fw)) ** 2 + ((yy - cy) / (0.95 * fh)) ** 2 <= 1.0
    assert mask[head].all(), f'{int((head & ~mask).sum())} of {int(head.sum())} head pixels outside'


def test_near_head_never_takes_over_a_far_heads_track() -> None:
    """A near person's big head box that contains a far head's small track starts its own track: the far head keeps
    its box (a takeover left it raw on the walking-people stream)."""
    tr = HeadTracker(TrackerConfig())
    hw = (480, 640)
    for _ in range(3):
        tr.update(det(300, 100, 30), hw)  # a far head, 30 px
    out = tr.update(det(270, 70, 120), hw)  # the far head is missed; a near 120 px head now covers it
    assert len(tr) == 2
    assert any(np.allclose(b, [300, 100, 330, 130], atol=3) for b in out.boxes)  # the far track is unchanged


def test_head_measured_at_the_image_border_grows_as_if_its_speed_were_unknown() -> None:
    """A box cut by the image border moves unlike its head (a head turning there): it grows like a new track."""
    hw = (480, 640)

    def last_left_edge_after_a_frame(x0: float) -> float:
        tr = HeadTracker(TrackerConfig())
        for x in (x0, x0 + 5, x0 + 10):  # a slow head: its speed alone grows the box little
            b = np.asarray([[x, 100, min(x + 50, hw[1]), 150]], np.float32)
            tr.update(HeadBoxes(b, np.ones(1, np.float32), np.zeros(1, np.int8)), hw)
        return float(tr.predict(hw).boxes[0][0]) - (x0 + 10)

    inside, border = last_left_edge_after_a_frame(460.0), last_left_edge_after_a_frame(580.0)
    assert border < inside - 5, (border, inside)  # at the border the box reaches further back: the head may turn there


def box_at(cx: float, cy: float, w: float, h: float) -> HeadBoxes:
    return HeadBoxes(np.asarray([[cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]], np.float32), np.ones(1, np.float32),
                     np.zeros(1, np.int8))


@pytest.mark.parametrize('speed', [0.0, 5.0, 11.0])  # px/frame; 11 is the near walker of the stream (12 % of its head)
def test_one_head_found_by_two_detectors_keeps_one_bounded_box(speed: float) -> None:
    """A walking head measured alternately by the pose detector (a wide box) and the face detector (a narrower,
    taller one off-centre), as in sync mode, with a frame without detection between: one box, never more than 1.6
    times the pose head's area, that always holds the head. Each estimate kept its own track before, the spare one
    grew while unmatched, and the walking-people stream had 40 % of its non-head pixels masked."""
    tr = HeadTracker(TrackerConfig())
    hw = (480, 1280)
    pose_area = 142.0 * 184.0
    x = 200.0
    for frame in range(60):
        if frame % 3 == 0:
            out = tr.update(box_at(x + 2, 219, 142, 184), hw)
        elif frame % 3 == 1:
            out = tr.update(box_at(x - 9, 215, 101, 167), hw)
        else:
            out = tr.predict(hw)
        assert len(out) == 1, f'frame {frame}: {len(out)} boxes for one head'
        b = out.boxes[0]
        assert contains(b, (x - 46, 155, x + 46, 279)), f'frame {frame}: head at x {x} not held by {b}'
        area = float((b[2] - b[0]) * (b[3] - b[1]))
        assert area <= 1.6 * pose_area, f'frame {frame}: box {area / pose_area:.2f} x the pose head'
        x += speed


def test_two_walking_heads_found_by_two_detectors_keep_bounded_boxes() -> None:
    """Two overlapping heads of the walking-people stream (a near one walking left past a middle one walking right),
    each found alternately by the pose detector and the face detector (sizes and offsets as measured there). Each
    detection must continue its own head's track: matched by overlap with grown boxes, the near head's face took
    over the middle head's track, the near head's track grew unmatched, and 40 % of the non-head pixels were masked.
    Every head stays held, and the boxes never exceed twice the pose heads' area."""
    tr = HeadTracker(TrackerConfig())
    hw = (480, 640)
    # (true centre x, y, size w, h, speed px/frame), pose head (dx, dy, w, h), face head (dx, dy, w, h)
    heads = [((530.0, 217.0, 93, 124, -11.0), (2, 2, 142, 184), (2, -2, 101, 167)),
             ((451.0, 246.0, 70, 92, 4.5), (-3, -2, 92, 119), (-5, -2, 70, 112))]
    pose_area = sum(p[2] * p[3] for _, p, _ in heads)
    for frame in range(30):
        cx = [t[0] + t[4] * frame for t, _, _ in heads]
        if frame % 3 == 2:
            out = tr.predict(hw)
        else:
            est = 1 if frame % 3 == 0 else 2  # the pose head, then the face head
            found = [box_at(x + h[est][0], h[0][1] + h[est][1], h[est][2], h[est][3]) for x, h in zip(cx, heads, strict=True)]
            out = tr.update(HeadBoxes.concat(found), hw)
        assert len(out) == 2, f'frame {frame}: {len(out)} boxes for two heads'
        for x, (t, _, _) in zip(cx, heads, strict=True):
            head = (x - t[2] / 2, t[1] - t[3] / 2, x + t[2] / 2, t[1] + t[3] / 2)
            assert any(contains(b, head) for b in out.boxes), f'frame {frame}: head {head} not held by {out.boxes}'
        area = float(np.sum((out.boxes[:, 2] - out.boxes[:, 0]) * (out.boxes[:, 3] - out.boxes[:, 1])))
        assert area <= 2.0 * pose_area, f'frame {frame}: boxes {area / pose_area:.2f} x the pose heads'


def test_backcast_moves_measured_heads_back_by_their_velocity_and_grows_them() -> None:
    tracker = HeadTracker()
    hw = (480, 640)

    def head(x: float) -> HeadBoxes:
        return HeadBoxes(np.array([[x, 100, x + 40, 140]], np.float32), np.ones(1, np.float32),
                         np.array([HeadSource.KEYPOINTS], np.int8))

    tracker.update(head(100), hw)
    assert tracker.backcast(0, hw).boxes[0].tolist() == [100, 100, 140, 140]
    unknown = tracker.backcast(2, hw).boxes[0]  # seen once: unknown velocity, grown evenly
    assert unknown[0] < 100 - 20 and unknown[2] > 140 + 20
    for k in range(1, 4):
        tracker.update(head(100 + 10 * k), hw)  # 10 px/frame to the right
    back = tracker.backcast(2, hw).boxes[0]
    centre = (back[0] + back[2]) / 2
    assert abs(centre - (130 + 20 - 20)) < 2  # two frames back: 20 px to the left of the measured box
    assert back[2] - back[0] > 40 and back[2] - back[0] < unknown[2] - unknown[0]
    tracker.predict(hw)  # a frame without detection: nothing was measured in it
    assert len(tracker.backcast(1, hw)) == 0
