"""The model card (README.md of the run folder) in the Hub's format: YAML metadata written by
huggingface_hub's `ModelCardData` (language, base model, datasets, metrics, and a `model-index` with
one result per test split eval-stt scored), then what the model was trained on and how."""

from __future__ import annotations

from pathlib import Path


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f} %"


def model_card(record: dict) -> str:
    from huggingface_hub import EvalResult, ModelCardData

    name = record["name"]
    opts = record["options"]
    family = record["model"]["family"]
    data = record["data"]
    datasets = [record["sources"][c] for c in opts["corpora"]]  # each corpus's Source, as train.json keeps it
    results = []
    for corpus, res in record.get("test", {}).items():
        ds = record["sources"][corpus]
        for metric, key, label in (("wer", "wer", "Test WER (normalized)"), ("cer", "cer", "Test CER (normalized)"),
                                   ("wer", "wer_raw", "Test WER (raw)")):
            results.append(EvalResult(
                task_type="automatic-speech-recognition", task_name="Automatic Speech Recognition",
                dataset_type=ds["repo_id"], dataset_name=ds["title"], dataset_config=ds["config"],
                dataset_split="test", dataset_revision=ds.get("revision"),
                metric_type=metric, metric_value=round(100 * res[key], 2), metric_name=label))
    base = record["model"]["base"]
    hub_base = None if Path(base).expanduser().exists() else base  # a local folder is no Hub id
    card = ModelCardData(
        language="fa", library_name="transformers", base_model=hub_base,
        tags=["automatic-speech-recognition", family, "persian", "persian-data"],
        datasets=[d["repo_id"] for d in datasets], metrics=["wer", "cer"], model_name=name,
        eval_results=results or None, pipeline_tag="automatic-speech-recognition")
    lines = ["---", card.to_yaml(), "---", "", f"# {name}", ""]
    lines += [f"Fine-tuned from `{record['model']['base']}` ({family}) on Persian speech with "
              f"`persian-data train-stt`, scored by `persian-data eval-stt`.", ""]
    lines += _results(record)
    lines += _data(record, datasets, data, opts)
    lines += _training(record, opts)
    lines += ["## Use", "", "```python", "from transformers import pipeline", "",
              f'asr = pipeline("automatic-speech-recognition", model="{name}")  # this folder, or its Hub id']
    if family == "whisper":
        lines += ["print(asr('clip.wav', generate_kwargs={'language': 'persian', 'task': 'transcribe'})['text'])"]
    else:
        lines += ["print(asr('clip.wav')['text'])"]
    lines += ["```", ""]
    if opts["targets"] == "normalized":
        lines += ["The model writes text as the scoring normalizer leaves it: Persian letters and digits, "
                  "no punctuation, ZWNJ-joined words (`میخواهم`).", ""]
    return "\n".join(lines)


def _duration(hours: float) -> str:
    if hours >= 1:
        return f"{hours:.2f} h"
    return f"{hours * 60:.1f} min" if hours * 60 >= 1 else f"{hours * 3600:.1f} s"


def _results(record: dict) -> list[str]:
    test = record.get("test", {})
    if not test:
        return []
    out = ["## Results (eval-stt, test splits)", "",
           "| corpus | clips | WER (normalized) | 95 % CI | CER (normalized) | WER (raw) | CER (raw) |",
           "|---|---|---|---|---|---|---|"]
    for corpus, r in test.items():
        ci = r.get("wer_ci") or [None, None]
        out.append(f"| {corpus} | {r['utterances']} | {_pct(r['wer'])} | {_pct(ci[0])}-{_pct(ci[1])} | "
                   f"{_pct(r['cer'])} | {_pct(r['wer_raw'])} | {_pct(r['cer_raw'])} |")
    out += ["", "Normalized: eval-stt's Persian normalizer (ی/ک, digits, diacritics, punctuation removed, ZWNJ "
            "joined). Each test split is scored whole; see `evals/<corpus>-test-<name>/` for breakdowns.", ""]
    return out


def _data(record: dict, datasets: list[dict], data: dict, opts: dict) -> list[str]:
    train, ev = data["train"], data["eval"]
    out = ["## Training data", ""]
    for d in datasets:
        out.append(f"- [{d['repo_id']}]({d['url']}){' (' + d['config'] + ')' if d['config'] else ''}: {d['license']}"
                   f"{', revision ' + d['revision'][:12] if d.get('revision') else ''}")
    out += ["", f"{train['clips']:,} clips ({_duration(train['hours'])}) from the {', '.join(opts['train_splits'])} "
            f"split(s), targets `{opts['targets']}`; evaluated during training on {ev['clips']:,} "
            f"{ev['split']} clips. Manifests and source commits: `train.json`.", ""]
    if train["excluded"]:
        out += ["Left out of training:", ""]
        out += [f"- {reason.replace('_', ' ')}: {n:,}" for reason, n in sorted(train["excluded"].items())]
        out += [""]
    leak = data["leakage"]
    if leak["excluded"]:
        out += [f"No leakage: clips whose normalized sentence, or whose speaker (corpora with speaker ids), is in "
                f"an evaluation or test split ({', '.join(leak['held_out_splits'])}) were left out.", ""]
    else:
        out += [f"**Leakage allowed** (`--allow-leakage`): {leak['leaked_clips_trained_on']:,} training clip(s) share "
                f"a sentence or a speaker with an evaluation or test split; test scores are optimistic.", ""]
    if data.get("minutes"):
        m = data["minutes"]
        out += [f"Few-shot subset: {m['selected']:.1f} of {m['available']:.1f} minutes (asked {m['requested']:g}, "
                f"seed {m['seed']}), {m['speakers']} speaker(s), genders {m['genders']}.", ""]
    return out


def _training(record: dict, opts: dict) -> list[str]:
    tr = record.get("training", {})
    best = tr.get("best") or {}
    out = ["## Training", "",
           f"- steps: {tr.get('global_step', 0):,} (batch {opts['batch_size']} x {opts['grad_accum']} accumulation), "
           f"learning rate {opts['learning_rate']:g}, warmup {opts['warmup']:g}, seed {opts['seed']}",
           f"- clip durations {opts['min_duration']:g}-{opts['max_duration']:g} s; encoder "
           f"{'frozen' if opts['freeze_encoder'] else 'trained'}; precision {record.get('runtime', {}).get('precision')}",
           f"- best checkpoint: step {best.get('step')} with validation WER {_pct(best.get('wer'))} (normalized)", ""]
    curve = tr.get("eval_curve") or []
    if curve:
        out += ["| step | eval WER | eval CER |", "|---|---|---|"]
        out += [f"| {p['step']} | {_pct(p.get('wer'))} | {_pct(p.get('cer'))} |" for p in curve]
        out += [""]
    return out
