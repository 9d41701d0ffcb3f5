"""The eval report: report.md (where answers fail, at a glance) and report.png (matplotlib, Agg)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from assistant.citations import OUTCOMES
from assistant.gate import Comparison
from assistant.metrics import EvalRun

WORST_SHOWN = 20
PER_KIND_SHOWN = 5
QUOTE_CHARS = 220

METRIC_HELP = {
    "answer_accuracy": "all questions: answerable ones answered with a gold answer in <= 60 words, "
                       "unanswerable ones abstained",
    "token_f1": "answerable: SQuAD token F1 against the best gold answer (abstention = 0)",
    "answered_rate": "answerable: share not abstained",
    "abstention_accuracy": "unanswerable: share abstained",
    "citation_accuracy": "correct answers citing an evidence document or quoting a gold answer",
    "hit@1": "answerable with evidence: first retrieved document is evidence",
    "hit@5": "answerable with evidence: evidence among the first 5 distinct retrieved documents",
    "mrr@10": "answerable with evidence: mean 1/rank of the first evidence document (0 beyond 10)",
    "latency_p50_ms": "all questions: median time of Assistant.ask (final turn)",
    "latency_p95_ms": "all questions: 95th percentile time of Assistant.ask (not gated)",
}


EVENTS = {
    "answered": "answers that are the LLM's (checked) text",
    "abstained": "the LLM said the passages do not answer (abstention)",
    "unverified": "nothing of the LLM's reply verified and the extractive answerer abstained: an abstention "
                  "quoting the closest passages (counted as an abstention in the metrics)",
    "fallback": "extractive answer instead (endpoint failed, prompt did not fit, or nothing supported)",
    "sentences": "sentences the LLM wrote",
    "kept": "sentences kept, each citing only passages that support it",
    "dropped": "sentences dropped as unsupported",
    "invalid_markers": "markers to passages that do not exist, removed",
    "unsupported_markers": "markers to passages that do not support the sentence, removed",
    "recited": "sentences re-pointed to the passage that supports them",
    "uncited": "supported sentences without a marker, given one",
    "passages_dropped": "passages left out to fit the context window",
}


def summarise(counts: list[dict | None]) -> dict[str, int]:
    """Totals of :meth:`CitationCheck.counts` over many answers (``None``: not generated, skipped)."""
    total: dict[str, int] = {"generated_questions": 0}
    for row in counts:
        if row is None:
            continue
        total["generated_questions"] += 1
        for key in EVENTS:
            total[key] = total.get(key, 0) + int(row.get(key, 0))
    return total


def citation_check_section(counts: list[dict | None]) -> list[str]:
    """Markdown lines for the eval report: how often each check event happened (empty for extractive runs)."""
    total = summarise(counts)
    questions = total["generated_questions"]
    if not questions:
        return []
    lines = ["", "## Citation check of generated answers", "",
             f"{questions} questions went to the LLM. Per-answer counts are in details.jsonl (`citation_check`).", "",
             "| event | count | rate | what it means |", "|---|---|---|---|"]
    for key, meaning in EVENTS.items():
        if key in OUTCOMES:
            rate = f"{total[key] / questions:.1%} of questions"
        elif key in ("sentences", "passages_dropped"):
            rate = f"{total[key] / questions:.2f} per question"
        else:
            rate = f"{total[key] / max(total['sentences'], 1):.1%} of sentences"
        lines.append(f"| {key} | {total[key]} | {rate} | {meaning} |")
    return lines


def write_report(run: EvalRun, out: Path, comparison: Comparison | None = None) -> None:
    """Write ``report.md`` and ``report.png`` for ``run`` into ``out``."""
    (out / "report.md").write_text(markdown(run, comparison), encoding="utf-8")
    plot(run, out / "report.png")


def _fmt(value, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _clip(text: str, limit: int = QUOTE_CHARS) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def markdown(run: EvalRun, comparison: Comparison | None = None) -> str:
    """The whole report as markdown."""
    m = run.metrics
    settings = ", ".join(f"{k}={v}" for k, v in run.settings.items())
    lines = [
        f"# Eval report: {run.name}",
        "",
        f"{m['questions']} questions ({m['answerable']} answerable, {m['unanswerable']} unanswerable) from "
        f"`{run.questions_file}` over `{run.documents}`, in {run.seconds:.0f} s. Settings: {settings}.",
        "",
    ]
    if comparison:
        verdict = "**FAILED**" if comparison.failed else "passed"
        lines += [f"Gate {verdict} against `{comparison.path}`: {len(comparison.broke)} questions went "
                  f"right -> wrong, {len(comparison.fixed)} wrong -> right.", ""]
    lines += ["## Metrics", ""]
    checks = {c.metric: c for c in comparison.checks} if comparison else {}
    if comparison:
        lines += ["| metric | value | baseline | change | tolerance | gate | over |", "|---|---|---|---|---|---|---|"]
    else:
        lines += ["| metric | value | over |", "|---|---|---|"]
    for key, help_text in METRIC_HELP.items():
        digits = 1 if key.endswith("_ms") else 3
        if comparison:
            c = checks.get(key)
            gate = "–" if c is None or c.delta is None else ("**FAIL**" if c.failed else "ok")
            lines.append(f"| {key} | {_fmt(m.get(key), digits)} | {_fmt(c.baseline if c else None)} | "
                         f"{_fmt(c.delta if c else None, 4)} | {_fmt(c.tolerance if c else None, 4)} | {gate} | "
                         f"{help_text} |")
        else:
            lines.append(f"| {key} | {_fmt(m.get(key), digits)} | {help_text} |")

    failures = Counter(s.failure for s in run.scores if s.failure)
    lines += ["", "## Where answers fail", ""]
    if failures:
        lines += ["| failure | questions | share of all | examples |", "|---|---|---|---|"]
        for kind, count in failures.most_common():
            examples = ", ".join(s.id for s in run.scores if s.failure == kind)
            lines.append(f"| {kind} | {count} | {count / len(run.scores):.1%} | {_cell(_clip(examples, 120))} |")
    else:
        lines.append("Every question was answered correctly.")

    lines += ["", "## By type", "", "| type | questions | accuracy | F1 | answered | abstained right | hit@5 | p50 ms |",
              "|---|---|---|---|---|---|---|---|"]
    for name, g in run.by_type.items():
        lines.append(f"| {name} | {g['questions']} | {_fmt(g['answer_accuracy'])} | {_fmt(g['token_f1'])} | "
                     f"{_fmt(g['answered_rate'])} | {_fmt(g['abstention_accuracy'])} | {_fmt(g['hit@5'])} | "
                     f"{_fmt(g['latency_p50_ms'], 1)} |")

    lines += citation_check_section([s.citation_check for s in run.scores])

    if comparison and (comparison.broke or comparison.fixed):
        lines += ["", "## Flips against the baseline", ""]
        for title, flips in (("right -> wrong", comparison.broke), ("wrong -> right", comparison.fixed)):
            for f in flips:
                lines.append(f"- {title} `{f.id}`: {_cell(f.question)}  \n  was: {_cell(_clip(f.was))}  \n"
                             f"  now: {_cell(_clip(f.now))}")

    lines += ["", f"## Worst failures (up to {PER_KIND_SHOWN} of each kind)", "",
              "In the order of the table above; within a kind, confident answers first (a wrong answer "
              "given with high confidence misleads a user most).", ""]
    lines += _worst(run) or ["None."]

    lines += ["", "## Abstention trade-off", ""]
    if run.curve:
        lines += ["What each threshold on the answer's confidence would do (the configured one is "
                  f"{run.settings.get('abstain_threshold')}). Accuracy is known only at or above it: below, "
                  "those answers were never composed.", "",
                  "| threshold | answered rate (answerable) | abstain rate (all) | abstention accuracy | "
                  "precision of answers | answer accuracy |", "|---|---|---|---|---|---|"]
        for row in run.curve:
            lines.append(f"| {row['threshold']:.2f} | {_fmt(row['answered_rate'])} | {_fmt(row['abstain_rate'])} | "
                         f"{_fmt(row['abstention_accuracy'])} | {_fmt(row['precision_answered'])} | "
                         f"{_fmt(row['answer_accuracy'])} |")
    else:
        lines.append("The answerer reported no confidence, so there is no curve.")
    lines += ["", "![accuracy by type, latency, abstention trade-off](report.png)", ""]
    return "\n".join(lines)


def _worst(run: EvalRun) -> list[str]:
    wrong = [(q, r, s) for q, r, s in zip(run.questions, run.records, run.scores) if not s.correct]
    wrong.sort(key=lambda item: (not item[2].answered, -item[2].confidence))
    kinds = Counter(s.failure for _, _, s in wrong)
    shown = []  # a few of every failure kind, most common kind first, so each kind gets examples
    for kind, _ in kinds.most_common():
        shown += [item for item in wrong if item[2].failure == kind][:PER_KIND_SHOWN]
    lines: list[str] = []
    for q, r, s in shown[:WORST_SHOWN]:
        lines.append(f"### `{q.id}` ({q.type}): {s.failure}")
        lines.append("")
        for earlier in q.history:
            lines.append(f"- earlier turn: {_cell(earlier)}")
        lines.append(f"- question: {_cell(q.question)}")
        lines.append(f"- gold: {_cell(' / '.join(q.answers)) if q.answers else '(abstain)'}")
        lines.append(f"- answer ({s.words} words, confidence {s.confidence:.2f}): {_cell(_clip(r['answer'], 500))}")
        for c in r["citations"]:
            page = f" p.{c['page']}" if c.get("page") else ""
            lines.append(f"  - [{c['n']}] `{c['doc_id']}`{page}: “{_cell(_clip(c['quote']))}”")
        evidence = ", ".join(f"`{d}`" for d in q.evidence_doc_ids) or "none"
        rank = f"rank {s.rank}" if s.rank else "not retrieved"
        lines.append(f"- evidence: {evidence} ({rank if q.evidence_doc_ids else 'n/a'}); retrieved: "
                     + (", ".join(f"`{d}`" for d in r["retrieved_doc_ids"]) or "nothing"))
        for key, value in q.extra.items():
            lines.append(f"- {key}: {_cell(_clip(str(value)))}")
        lines.append("")
    return lines


def plot(run: EvalRun, path: Path) -> None:
    """report.png: accuracy by type, the latency histogram and the abstention trade-off."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.6))
    names = list(run.by_type)
    accuracy = [run.by_type[n]["answer_accuracy"] or 0.0 for n in names]
    bars = axes[0].bar(names, accuracy, color="#4C72B0")
    for bar, name in zip(bars, names):
        axes[0].annotate(f"{bar.get_height():.2f} (n={run.by_type[name]['questions']})",
                         (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom", fontsize=8)
    axes[0].set_ylim(0, 1.1)
    axes[0].set_title("answer accuracy by type")
    axes[0].tick_params(axis="x", labelrotation=20, labelsize=8)

    latencies = [s.latency_ms for s in run.scores]
    axes[1].hist(latencies, bins=min(30, max(5, len(latencies) // 4)), color="#55A868")
    for key, style in (("latency_p50_ms", "--"), ("latency_p95_ms", ":")):
        if run.metrics.get(key) is not None:
            axes[1].axvline(run.metrics[key], color="black", linestyle=style, label=f"{key[8:11]} {run.metrics[key]:.0f} ms")
    axes[1].set_title("latency per question (ms)")
    axes[1].set_xlabel("ms")
    axes[1].legend()

    if run.curve:
        t = [row["threshold"] for row in run.curve]
        axes[2].plot(t, [row["answered_rate"] or 0 for row in run.curve], marker="o", label="answered rate (answerable)")
        axes[2].plot(t, [row["abstention_accuracy"] or 0 for row in run.curve], marker="s",
                     label="abstention accuracy (unanswerable)")
        known = [(row["threshold"], row["answer_accuracy"]) for row in run.curve if row["answer_accuracy"] is not None]
        if known:
            axes[2].plot(*zip(*known), marker="^", label="answer accuracy")
        axes[2].axvline(run.settings.get("abstain_threshold", 0.5), color="grey", linestyle="--")
        axes[2].set_ylim(0, 1.05)
        axes[2].set_xlabel("confidence threshold")
        axes[2].legend(fontsize=8)
    axes[2].set_title("abstention trade-off")
    fig.suptitle(f"{run.name}: accuracy {run.metrics.get('answer_accuracy')}, {run.metrics['questions']} questions")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
