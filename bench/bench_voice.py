"""Voice anonymization bench: latency, real-time factor, speaker-verification EER (two attackers), WER.

Prints one table per run. Speech comes from registry packages only (see anon_ros.core.voice_eval):
Debian pocketsphinx-testdata (LibriVox reader, 'cards' speaker), pyannote.audio's sample.wav (Diane, Sheila),
Debian flite voices kal16/awb/rms/slt speaking 12 Harvard sentences.

Protocol. Per speaker, the first ~third of its utterances enrol, the rest are trials. Each speaker's trials form
one anonymized run (one random strength draw per speaker stream, reset between utterances). Attackers:

* ignorant: enrolled on original speech, scores anonymized trials;
* lazy-informed: runs the same anonymizer (its own random draw) on the enrolment speech.

Every trial is scored (cosine, Resemblyzer d-vectors) against every speaker; EER pools all seeds.
WER: pocketsphinx on the transcribed utterances (LibriVox, cards, flite), original vs anonymized.

Usage: python bench/bench_voice.py [--presets mcadams,strong,balanced] [--seeds 3] [--no-wer]
Needs: pip install torch==2.13.0 'setuptools<81' resemblyzer==0.1.4 pocketsphinx==5.1.1;
apt-get install pocketsphinx-testdata flite; pip download --no-deps pyannote.audio==4.0.7 -d ~/.cache/anon_ros/wheels
"""

from __future__ import annotations

import math
import os

os.environ.setdefault('OMP_NUM_THREADS', '1')  # one core: RTF is reported per core
os.environ.setdefault('OPENBLAS_NUM_THREADS', '1')
os.environ.setdefault('MKL_NUM_THREADS', '1')

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections import defaultdict  # noqa: E402
from dataclasses import replace  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from anon_ros.core.voice.mcadams import McAdamsAnonymizer, McAdamsConfig, Strength  # noqa: E402
from anon_ros.core.voice_eval import (  # noqa: E402
    PocketsphinxAsr,
    ResemblyzerAttacker,
    Utterance,
    compute_eer,
    cosine,
    load_speech,
    percent,
    verification_eer,
    word_error_rate,
)

PRESETS: dict[str, McAdamsConfig] = {s.value: McAdamsConfig.preset(s) for s in Strength}


def run_stream(anon: McAdamsAnonymizer, audio: np.ndarray, chunk: int) -> np.ndarray:
    """Stream ``audio`` in ``chunk``-sample pieces, flush, and drop the delay (output aligned with input)."""
    outs = [anon.process(audio[i:i + chunk]) for i in range(0, audio.size, chunk)]
    outs.append(anon.flush())
    return np.concatenate(outs)[anon.latency_samples:]


def timing(config: McAdamsConfig, utts: list[Utterance], chunk_ms: float) -> tuple[float, float]:
    """(algorithmic latency in ms incl. one chunk of buffering, real-time factor) on this core."""
    anon = McAdamsAnonymizer(config, rng=np.random.default_rng(0))
    chunk = int(round(chunk_ms * 1e-3 * config.sample_rate))
    total = 0.0
    spent = 0.0
    for u in utts:
        t0 = time.process_time()  # CPU time of this process: other tenants of the machine do not count
        run_stream(anon, u.audio, chunk)
        spent += time.process_time() - t0
        total += u.duration_s
    # Worst case over the pitch range (look-ahead grows with the pitch factor).
    worst = McAdamsAnonymizer(config, params=replace(anon.params, pitch=config.pitch_range[1]))
    latency_ms = 1e3 * (worst.latency_samples + chunk) / config.sample_rate
    return latency_ms, spent / total


def split(utts: list[Utterance]) -> tuple[dict[str, list[Utterance]], dict[str, list[Utterance]]]:
    """Per speaker: first third (>= 1) enrols, the rest are trials."""
    by: dict[str, list[Utterance]] = defaultdict(list)
    for u in utts:
        by[u.speaker].append(u)
    enrol, trials = {}, {}
    for s, us in by.items():
        k = max(1, len(us) // 3)
        enrol[s], trials[s] = us[:k], us[k:]
    return enrol, trials


_ENROL_CACHE: dict[int, dict[str, list[np.ndarray]]] = {}


def evaluate(config: McAdamsConfig | None, utts: list[Utterance], attacker: ResemblyzerAttacker,
             seeds: int, chunk: int) -> tuple[float, float, int, int]:
    """(ignorant EER, lazy-informed EER, n target, n non-target); config None = no anonymization."""
    enrol, trials = split(utts)
    key = id(utts)
    if key not in _ENROL_CACHE:  # original enrolment embeddings are the same for every preset
        _ENROL_CACHE[key] = {s: [attacker.embed(u.audio, u.sample_rate) for u in us] for s, us in enrol.items()}
    orig_enrol = _ENROL_CACHE[key]
    ign_trials: list[tuple[str, str, np.ndarray]] = []
    lazy_scores: list[tuple[dict[str, list[np.ndarray]], list[tuple[str, str, np.ndarray]]]] = []
    for seed in range(seeds if config is not None else 1):
        rng = np.random.default_rng(1000 + seed)
        tr = []
        anon_enrol = {}
        for s in sorted(trials):
            if config is None:
                tr += [(s, u.utt_id, attacker.embed(u.audio, u.sample_rate)) for u in trials[s]]
                continue
            speaker_run = McAdamsAnonymizer(config, rng=rng)  # one draw per speaker stream
            tr += [(s, u.utt_id, attacker.embed(run_stream(speaker_run, u.audio, chunk), u.sample_rate))
                   for u in trials[s]]
            attacker_run = McAdamsAnonymizer(config, rng=rng)  # the attacker's own draw
            anon_enrol[s] = [attacker.embed(run_stream(attacker_run, u.audio, chunk), u.sample_rate)
                             for u in enrol[s]]
        ign_trials += tr
        lazy_scores.append((anon_enrol if config is not None else orig_enrol, tr))
    ign = verification_eer(orig_enrol, ign_trials)
    # Lazy-informed: pool the scores of every seed (each seed has its own anonymized enrolment).
    tgt: list[float] = []
    non: list[float] = []
    for en, tr in lazy_scores:
        models = {s: np.mean(v, axis=0) for s, v in en.items()}
        for spk, _uid, emb in tr:
            for s, m in models.items():
                (tgt if s == spk else non).append(cosine(emb, m))
    return ign.eer, compute_eer(tgt, non), ign.n_target, ign.n_nontarget


def wer(config: McAdamsConfig | None, utts: list[Utterance], asr: PocketsphinxAsr, chunk: int) -> float:
    """Corpus WER on the transcribed utterances, one random draw per speaker."""
    rng = np.random.default_rng(7)
    runs: dict[str, McAdamsAnonymizer] = {}
    refs, hyps = [], []
    for u in utts:
        audio = u.audio
        if config is not None:
            run = runs.setdefault(u.speaker, McAdamsAnonymizer(config, rng=rng))
            audio = run_stream(run, audio, chunk)
        refs.append(u.text)
        hyps.append(asr.transcribe(audio, u.sample_rate))
    return word_error_rate(refs, hyps)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--presets', default='mcadams,strong,balanced', help=f'comma list of {sorted(PRESETS)}')
    ap.add_argument('--seeds', type=int, default=3, help='independent draws per speaker (pooled)')
    ap.add_argument('--chunk-ms', type=float, default=10.0)
    ap.add_argument('--sets', default='librivox,cards,pyannote,flite')
    ap.add_argument('--no-wer', action='store_true')
    args = ap.parse_args(argv)
    names = [p for p in args.presets.split(',') if p]
    for p in names:
        if p not in PRESETS:
            ap.error(f'unknown preset {p!r}; choose from {sorted(PRESETS)}')
    utts = load_speech(args.sets.split(','))
    chunk = int(round(args.chunk_ms * 1e-3 * 16000))
    by: dict[str, list[str]] = defaultdict(list)
    for u in utts:
        by[u.speaker].append(u.utt_id)
    print(f'speech: {len(utts)} utterances, {sum(u.duration_s for u in utts):.0f} s, {len(by)} speakers')
    for s, ids in by.items():
        print(f'  {s}: {len(ids)} utts ({ids[0]} .. {ids[-1]})')
    attacker = ResemblyzerAttacker()
    asr = None if args.no_wer else PocketsphinxAsr()
    wer_utts = [u for u in utts if u.text and u.source != 'pyannote.audio']
    rows = []
    base = evaluate(None, utts, attacker, 1, chunk)
    base_wer = wer(None, wer_utts, asr, chunk) if asr else float('nan')
    rows.append(('original', float('nan'), float('nan'), base[0], base[1], base_wer))
    for name in names:
        cfg = PRESETS[name]
        lat, rtf = timing(cfg, [u for u in utts if u.source == 'pocketsphinx-testdata'], args.chunk_ms)
        ign, lazy, _, _ = evaluate(cfg, utts, attacker, args.seeds, chunk)
        w = wer(cfg, wer_utts, asr, chunk) if asr else float('nan')
        rows.append((name, lat, rtf, ign, lazy, w))
        print(f'[{name}] {cfg}', flush=True)
    print(f'trials per seed: {base[2]} target / {base[3]} non-target; seeds {args.seeds}; '
          f'chunk {args.chunk_ms} ms; WER on {len(wer_utts)} utts ({sum(len(u.text.split()) for u in wer_utts)} words)')
    print(f'{"preset":10s} {"latency":>9s} {"RTF/core":>9s} {"EER ign":>9s} {"EER lazy":>9s} {"WER":>8s}')
    for name, lat, rtf, ign, lazy, w in rows:
        lat_s = '-' if math.isnan(lat) else f'{lat:.1f} ms'
        rtf_s = '-' if math.isnan(rtf) else f'{rtf:.3f}'
        print(f'{name:10s} {lat_s:>9s} {rtf_s:>9s} {percent(ign):>9s} {percent(lazy):>9s} {percent(w):>8s}')
    print('targets: latency <= 30 ms, RTF <= 0.05, EER ign >= 40 %, WER <= original + 15 points')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
