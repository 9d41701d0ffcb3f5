"""Quick squad2-dev measurement for tuning (the full harness is `assistant eval`)."""
import json, re, string, sys, time, statistics
from pathlib import Path
import assistant
from assistant.settings import Settings
from assistant.pipeline import Assistant

ROOT = Path(__file__).resolve().parent.parent
def norm(s):
    s = s.lower(); s = "".join(c for c in s if c not in set(string.punctuation))
    s = re.sub(r"\b(a|an|the)\b", " ", s); return " ".join(s.split())

def main(store="/tmp/squad-store", **over):
    settings = Settings(store_dir=Path(store), **over)
    bot = Assistant(settings)
    if bot.store.count() == 0:
        print(bot.ingest([ROOT / "eval/squad2-dev/documents.jsonl"], progress=False).summary())
    qs = [json.loads(l) for l in open(ROOT / "eval/squad2-dev/questions.jsonl")]
    res = {"ans_ok": 0, "ans_n": 0, "answered": 0, "unans_ok": 0, "unans_n": 0, "hit1": 0, "hit5": 0, "mrr": 0.0, "sent_ok": 0}
    lat = []
    for q in qs:
        a = bot.ask(q["question"]); lat.append(a.latency_ms)
        if q["answers"]:
            res["ans_n"] += 1
            ids = a.retrieved_doc_ids; ev = set(q["evidence_doc_ids"])
            rank = next((i for i, d in enumerate(ids) if d in ev), None)
            if rank is not None:
                res["hit1"] += rank == 0; res["hit5"] += rank < 5; res["mrr"] += 1 / (rank + 1)
            if not a.abstained:
                res["answered"] += 1
                ok = len(a.text.split()) <= 60 and any(norm(g) in norm(a.text) for g in q["answers"])
                res["ans_ok"] += ok
        else:
            res["unans_n"] += 1; res["unans_ok"] += a.abstained
    n = res["ans_n"]
    print(f"answerable acc {res['ans_ok']/n:.3f} answered {res['answered']/n:.3f} | abstain {res['unans_ok']/res['unans_n']:.3f} | "
          f"hit1 {res['hit1']/n:.3f} hit5 {res['hit5']/n:.3f} mrr {res['mrr']/n:.3f} | p50 {statistics.median(lat):.1f} ms p95 {sorted(lat)[int(.95*len(lat))]:.1f}")

if __name__ == "__main__":
    kw = dict(a.split("=", 1) for a in sys.argv[1:])
    main(**kw)
