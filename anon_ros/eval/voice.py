"""Voice anonymization evaluation: speaker verification EER for two attackers and ASR WER, for anon_ros's McAdams
anonymizer (strength drawn at random per run) and the VoicePrivacy B2-style McAdams baseline (fixed alpha 0.8).

Protocol. Per speaker, the first third of its utterances (at least one) enrol, the rest are trials; every trial is
scored (cosine of Resemblyzer d-vectors) against every speaker's mean enrolment embedding. Each utterance is one
recording, so ours draws a fresh strength for each. Attackers:

* ignorant: enrolled on original speech;
* lazy-informed (semi-informed): applies the same anonymizer to the enrolment speech (ours: a fresh random strength
  per utterance; B2: the fixed alpha) and enrols on that.

WER: pocketsphinx (weak: ~20 % on clean read speech) on the transcribed utterances, original vs anonymized
(pyannote's telephone turns are left out: their transcript is loose).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from anon_ros.core.voice.mcadams import McAdamsConfig, VoiceParams, anonymize_offline
from anon_ros.core.voice_eval import Utterance, verification_eer, word_error_rate
from anon_ros.eval.datasets import SpeechSet

B2_ALPHA = 0.8


@dataclass(frozen=True)
class VoiceMethod:
    """An anonymizer under test: a name, its configuration, and how a run's strength is chosen."""

    name: str
    label: str
    config: McAdamsConfig
    fixed: VoiceParams | None  # None: drawn at random per utterance from config's ranges

    def params(self, rng: np.random.Generator) -> VoiceParams:
        return self.fixed if self.fixed is not None else VoiceParams.draw(self.config, rng)

    def describe(self) -> str:
        c = self.config
        if self.fixed is not None:
            return f'McAdams, fixed alpha {self.fixed.alpha} (VoicePrivacy B2 style), LPC order {c.lpc_order}'
        return (f'McAdams, alpha ~ U{list(c.alpha_range)}, formant factor range {list(c.vtl_range)}, pitch factor '
                f'range {list(c.pitch_range)}, drawn per utterance; LPC order {c.lpc_order}, frames {c.frame_ms} ms '
                f'hop {c.hop_ms} ms')


def default_methods() -> list[VoiceMethod]:
    """ours (the shipped defaults of McAdamsConfig) and B2 (fixed alpha 0.8)."""
    ours = McAdamsConfig()
    return [
        VoiceMethod('ours', 'anon_ros (McAdams, random strength)', ours, None),
        VoiceMethod('b2', 'McAdams B2 (alpha 0.8)', McAdamsConfig(), VoiceParams(alpha=B2_ALPHA)),
    ]


def split(utts: list[Utterance]) -> tuple[dict[str, list[Utterance]], dict[str, list[Utterance]], list[str]]:
    """Per speaker: first third (>= 1) enrols, the rest are trials; speakers with < 2 utterances are left out."""
    by: dict[str, list[Utterance]] = defaultdict(list)
    for u in utts:
        by[u.speaker].append(u)
    enrol, trials, dropped = {}, {}, []
    for s, us in by.items():
        if len(us) < 2:
            dropped.append(s)
            continue
        k = max(1, len(us) // 3)
        enrol[s], trials[s] = us[:k], us[k:]
    return enrol, trials, dropped


def _score_eer(enrol: dict[str, list[np.ndarray]], trials: list[tuple[str, str, np.ndarray]]) -> dict[str, Any]:
    """EER and trial counts, plus the mean cosine score of target and non-target trials."""
    from anon_ros.core.voice_eval import cosine

    r = verification_eer(enrol, trials)
    models = {s: np.mean(v, axis=0) for s, v in enrol.items() if v}
    tgt = [cosine(e, models[spk]) for spk, _u, e in trials if spk in models]
    non = [cosine(e, m) for spk, _u, e in trials for s, m in models.items() if s != spk]
    return {'eer': r.eer, 'n_target': r.n_target, 'n_nontarget': r.n_nontarget,
            'target_score_mean': float(np.mean(tgt)) if tgt else None,
            'nontarget_score_mean': float(np.mean(non)) if non else None}


def evaluate_voice(
    speech: SpeechSet,
    methods: list[VoiceMethod] | None = None,
    *,
    seed: int = 0,
    with_wer: bool = True,
    wer_limit: int | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """EERs, WERs and offline real-time factors for the original speech and each method."""
    from anon_ros.core.voice_eval import PocketsphinxAsr, ResemblyzerAttacker

    methods = methods if methods is not None else default_methods()
    enrol, trials, dropped = split(speech.utterances)
    if len(enrol) < 2:
        msg = f'speaker verification needs >= 2 speakers with >= 2 utterances, got {sorted(enrol)}'
        raise ValueError(msg)
    attacker = ResemblyzerAttacker()
    asr = PocketsphinxAsr() if with_wer else None
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()

    def emb(audio: np.ndarray, rate: int) -> np.ndarray:
        return attacker.embed(audio, rate)

    orig_enrol = {s: [emb(u.audio, u.sample_rate) for u in us] for s, us in enrol.items()}
    orig_trials = [(s, u.utt_id, emb(u.audio, u.sample_rate)) for s in sorted(trials) for u in trials[s]]
    results: dict[str, Any] = {
        'original': {'label': 'original speech', 'ignorant': _score_eer(orig_enrol, orig_trials)}}
    wer_utts = [u for u in speech.utterances if u.text and u.source != 'pyannote.audio']
    if wer_limit is not None:
        # Spread over speakers: every k-th transcribed utterance.
        step = max(1, len(wer_utts) // max(1, wer_limit))
        wer_utts = wer_utts[::step][:wer_limit]
    wer_words = sum(len(u.text.split()) for u in wer_utts)
    if asr is not None and wer_utts:
        results['original']['wer'] = word_error_rate([u.text for u in wer_utts],
                                                     [asr.transcribe(u.audio, u.sample_rate) for u in wer_utts])
    log(f'  original: EER {results["original"]["ignorant"]["eer"]:.3f} ({time.perf_counter() - t0:.0f} s)')
    for m in methods:
        cpu = 0.0
        audio_s = 0.0
        alphas: list[float] = []

        def run(u: Utterance, m: VoiceMethod = m, alphas: list[float] = alphas) -> np.ndarray:
            nonlocal cpu, audio_s
            p = m.params(rng)
            alphas.append(p.alpha)
            c0 = time.process_time()
            y = anonymize_offline(u.audio, m.config, p)
            cpu += time.process_time() - c0
            audio_s += u.duration_s
            return y

        anon_trials_audio = {(s, u.utt_id): run(u) for s in sorted(trials) for u in trials[s]}
        anon_trials = [(s, u.utt_id, emb(anon_trials_audio[(s, u.utt_id)], u.sample_rate))
                       for s in sorted(trials) for u in trials[s]]
        lazy_enrol = {s: [emb(run(u), u.sample_rate) for u in us] for s, us in enrol.items()}
        r: dict[str, Any] = {
            'label': m.label,
            'description': m.describe(),
            'ignorant': _score_eer(orig_enrol, anon_trials),
            'lazy_informed': _score_eer(lazy_enrol, anon_trials),
            'alpha_drawn': {'min': float(min(alphas)), 'max': float(max(alphas)), 'mean': float(np.mean(alphas))},
            'offline_rtf_per_core': cpu / audio_s if audio_s else None,
        }
        if asr is not None and wer_utts:
            hyps = []
            for u in wer_utts:
                cached = anon_trials_audio.get((u.speaker, u.utt_id))
                hyps.append(asr.transcribe(cached if cached is not None else run(u), u.sample_rate))
            r['wer'] = word_error_rate([u.text for u in wer_utts], hyps)
        results[m.name] = r
        log(f'  {m.name}: EER ignorant {r["ignorant"]["eer"]:.3f}, lazy-informed {r["lazy_informed"]["eer"]:.3f} '
            f'({time.perf_counter() - t0:.0f} s)')
    return {
        'speakers': speech.speakers(),
        'enrol_utterances': {s: [u.utt_id for u in us] for s, us in enrol.items()},
        'trial_utterances': {s: [u.utt_id for u in us] for s, us in trials.items()},
        'speakers_left_out': dropped,
        'wer_utterances': len(wer_utts),
        'wer_words': wer_words,
        'methods': results,
        'seed': seed,
    }


# -------------------------------------------------------------------------------------------------- report

HEADERS = ['method', 'EER ignorant', 'EER lazy-informed', 'WER', 'offline RTF/core']


def _rows(result: dict[str, Any]) -> list[list[str]]:
    from anon_ros.eval.report import num, pct

    rows = []
    for name, r in result['methods'].items():
        rows.append([r.get('label', name), pct(r['ignorant']['eer']),
                     pct(r['lazy_informed']['eer']) if 'lazy_informed' in r else '-',
                     pct(r.get('wer')), num(r.get('offline_rtf_per_core'), 3) if 'offline_rtf_per_core' in r else '-'])
    return rows


def table(result: dict[str, Any]) -> str:
    """The short console table."""
    from anon_ros.eval.report import text_table

    n = sum(len(v) for v in result['trial_utterances'].values())
    return (f"{len(result['speakers'])} speakers, {n} trial utterances; WER on {result['wer_utterances']} utterances "
            f"({result['wer_words']} words)\n" + text_table(HEADERS, _rows(result)))


def write_report(result: dict[str, Any], out: Any) -> dict[str, str]:
    """report.md and PNGs (EER bars, WER bars)."""
    from anon_ros.eval.report import Markdown, bar_plot

    names = list(result['methods'])
    labels = [result['methods'][n].get('label', n).split(' (')[0] for n in names]
    eer = bar_plot(out / 'eer.png', 'Speaker verification EER (Resemblyzer attacker; 50 % = chance)', labels,
                   {'ignorant': [result['methods'][n]['ignorant']['eer'] for n in names],
                    'lazy-informed': [result['methods'][n].get('lazy_informed', {}).get('eer') for n in names]},
                   'EER', ylim=(0, 0.6), percent=True)
    wer = bar_plot(out / 'wer.png', 'Word error rate (pocketsphinx)', labels,
                   {'WER': [result['methods'][n].get('wer') for n in names]}, 'WER', percent=True)
    md = Markdown('Voice anonymization: privacy and utility')
    md.para(f"Command: `{result['command']}` ({result['elapsed_s']:.0f} s on {result['machine']['cpus']} CPUs, "
            f"{result['machine']['date']}). Data: {result['dataset']}.")
    md.heading('Summary')
    md.table(HEADERS, _rows(result))
    md.para('EER: speaker verification equal error rate of trials against every enrolled speaker (higher = more '
            'private; 50 % = chance). Ignorant attacker: enrolled on original speech. Lazy-informed attacker: applies '
            'the same anonymizer to its enrolment speech (ours: a fresh random strength per utterance; B2: alpha 0.8). '
            'WER: pocketsphinx, lower is better; its baseline on original speech is weak.')
    md.bullets([f"**{n}**: {r['description']}" for n, r in result['methods'].items() if 'description' in r])
    md.image(eer, 'EER')
    md.image(wer, 'WER')
    md.heading('Speakers and utterances')
    md.table(['speaker', 'source', 'utterances', 'seconds', 'enrolment', 'trials'],
             [[s, str(d['source']), str(d['utterances']), f"{float(d['seconds']):.1f}",
               ', '.join(result['enrol_utterances'].get(s, [])) or '-',
               str(len(result['trial_utterances'].get(s, [])))] for s, d in result['speakers'].items()])
    if result['speakers_left_out']:
        md.para('Left out (fewer than 2 utterances): ' + ', '.join(result['speakers_left_out']))
    for note in result.get('notes', []):
        md.para(f'Note: {note}')
    md.write(out / 'report.md')
    return {'report': 'report.md', 'eer_png': eer.name, 'wer_png': wer.name}
