"""The ``assistant`` command: ingest, ask, documents, remove, config, eval, serve, feedback.

Flags override settings, which override ``ASSISTANT_*`` environment variables.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import textwrap
from pathlib import Path

import assistant  # noqa: F401  (offline environment first)
from assistant.settings import MAX_TOP_K, Settings, load_settings

# ANSI escape sequences (CSI, OSC, two-character) and other C0/C1 control characters but newline and tab
TERMINAL_CONTROLS = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-_]?|\x9b[0-?]*[ -/]*[@-~]"
    r"|[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def terminal_safe(text: object) -> str:
    """Document text with terminal control sequences removed, safe to print."""
    return TERMINAL_CONTROLS.sub("", str(text or ""))


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", type=Path, help="Chroma store folder (default: ASSISTANT_STORE_DIR or .store)")
    parser.add_argument("--chroma-url", help="http://host:port of a Chroma server instead of --store")
    parser.add_argument("--collection", help="Chroma collection name")


def _settings(args: argparse.Namespace, **extra) -> Settings:
    return load_settings(store_dir=getattr(args, "store", None), chroma_url=getattr(args, "chroma_url", None),
                         collection=getattr(args, "collection", None), **extra)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="assistant", description=__doc__.splitlines()[0].replace("``", ""))
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("ingest", help="load, chunk, embed and store articles (incremental)")
    p.add_argument("paths", nargs="*", type=Path, help="files, folders or .jsonl dumps (default: corpus/)")
    _common(p)
    p.add_argument("--prune", action=argparse.BooleanOptionalAction, default=True,
                   help="remove documents that disappeared from an input (default: on)")
    p.add_argument("--chunk-size", type=int)
    p.add_argument("--chunk-overlap", type=int)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--workers", type=int, help="processes that read, chunk and embed (default: ASSISTANT_INGEST_WORKERS or 1)")

    p = sub.add_parser("ask", help="answer a question with citations")
    p.add_argument("question")
    _common(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--explain", action="store_true",
                   help="also show why: P(answerable) and the top candidate sentences with their probabilities")
    p.add_argument("--top-k", type=int, help="passages to consider and cite")
    p.add_argument("--as-of", help="date the question is asked on (YYYY-MM-DD)")
    p.add_argument("--source", help="only passages whose source contains this text")
    p.add_argument("--since", help="only articles published on or after YYYY-MM-DD")
    p.add_argument("--until", help="only articles published on or before YYYY-MM-DD")

    p = sub.add_parser("documents", help="list the documents in the store")
    _common(p)
    p.add_argument("--json", action="store_true", help="print one JSON array")

    p = sub.add_parser("remove", help="remove documents from the store (an upload's file too)")
    p.add_argument("doc_ids", nargs="+", metavar="DOC_ID", help="ids as `assistant documents` lists them")
    _common(p)

    p = sub.add_parser("config", help="print the effective settings")
    _common(p)
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("serve", help="open the chat in the browser (ingests corpus/ first if the store is empty)")
    _common(p)
    p.add_argument("--host", help="interface to listen on (default: ASSISTANT_HOST or 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default: ASSISTANT_PORT or 7860)")
    p.add_argument("--corpus", type=Path, help="corpus folder (default: ASSISTANT_CORPUS_DIR or corpus)")

    p = sub.add_parser("eval", help="score answers on a question set; regression gate against a baseline")
    p.add_argument("--documents", type=Path, required=True, help="folder of articles or a documents .jsonl")
    p.add_argument("--questions", type=Path, required=True, help="questions .jsonl (see eval/README.md)")
    p.add_argument("--out", type=Path, help="output folder (default: eval/out/<name>)")
    _common(p)
    p.add_argument("--limit", type=int, help="ask only the first N questions")
    p.add_argument("--top-k", type=int, help="passages to consider and cite")
    p.add_argument("--name", help="eval set name (default: the questions file's folder)")
    p.add_argument("--baseline", type=Path, help="fail when a gated metric drops below this baseline")
    p.add_argument("--update-baseline", action="store_true",
                   help="write the baseline (--baseline FILE, or eval/baseline/<name>.json)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")

    p = sub.add_parser("feedback", help="users' feedback on answers: list, counts by day, export as eval questions")
    p.add_argument("action", choices=["list", "counts", "export"],
                   help="list: one line per entry; counts: per day; export: down-voted and flagged "
                        "answers as eval questions (--out)")
    _common(p)
    p.add_argument("--out", type=Path, help="export: the eval questions .jsonl to write")
    p.add_argument("--json", action="store_true", help="list, counts: JSON lines")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`assistant ask ... | head`): nothing is wrong here
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 0
    except Exception as exc:  # one clear line, no traceback, for errors we know how to explain
        from assistant.contract import QuestionError
        from assistant.embedding import ModelMissingError
        from assistant.store import StoreError

        if isinstance(exc, (ModelMissingError, QuestionError, StoreError, ValueError)):
            print(f"error: {exc}", file=sys.stderr)
            return 2
        return _unexpected(exc)
    except BaseException as exc:  # a Rust panic inside chromadb is a BaseException
        if type(exc).__name__ != "PanicException":
            raise
        return _unexpected(exc)


def _unexpected(exc: BaseException) -> int:
    """One line for an error we did not foresee (ASSISTANT_DEBUG=1 shows the traceback)."""
    import os

    if os.environ.get("ASSISTANT_DEBUG"):
        raise exc
    detail = " ".join(str(exc).split())[:300]
    if type(exc).__module__.startswith("chromadb") or type(exc).__name__ == "PanicException":
        print(f"error: the Chroma store failed ({type(exc).__name__}: {detail}); if it is damaged, move it "
              "away and run `assistant ingest` again", file=sys.stderr)
        return 2
    print(f"error: {type(exc).__name__}: {detail} (this is a bug; run again with ASSISTANT_DEBUG=1 for "
          "details)", file=sys.stderr)
    return 1


def _top_k(value: int | None) -> int | None:
    if value is not None and not 1 <= value <= MAX_TOP_K:
        raise ValueError(f"--top-k must be between 1 and {MAX_TOP_K} (got {value})")
    return value


def _existing_store(settings: Settings):
    """The store, or :class:`StoreError` when there is none yet (nothing is created)."""
    from pathlib import Path as _Path

    from assistant.store import CHROMA_FILE, Store, StoreError

    if not settings.chroma_url and not (_Path(settings.store_dir).expanduser() / CHROMA_FILE).exists():
        raise StoreError(f"no store at {settings.store_dir}: nothing has been ingested there "
                         "(run `assistant ingest FOLDER`, or pass --store)")
    return Store(settings, preload=False)


def cmd_ingest(args) -> int:
    from assistant.pipeline import Assistant

    settings = _settings(args, chunk_size=args.chunk_size, chunk_overlap=args.chunk_overlap,
                         ingest_workers=args.workers)
    bot = Assistant(settings)
    report = bot.ingest(args.paths or None, prune=args.prune, progress=not args.quiet)
    print(terminal_safe(report.summary()))
    return 1 if report.failed and not (report.added or report.updated or report.unchanged) else 0


def _filters(args):
    from assistant.contract import Filters, parse_day

    for name in ("as_of", "since", "until"):
        value = getattr(args, name, None)
        if value:
            parse_day(value, f"--{name.replace('_', '-')}")
    return Filters(source=args.source, since=args.since, until=args.until, as_of=args.as_of)


def cmd_ask(args) -> int:
    from assistant.contract import read_as, source_line
    from assistant.pipeline import ready_assistant

    _top_k(args.top_k)
    filters = _filters(args)
    bot = ready_assistant(_settings(args), progress=not args.json)
    streamed = bot.settings.llm != "extractive" and not args.json
    if streamed:  # ASSISTANT_LLM=openai: checked sentences appear as the model writes them
        from assistant.generative import print_checked_stream

        answer = print_checked_stream(bot.stream(args.question, top_k=args.top_k, filters=filters))
    else:
        answer = bot.ask(args.question, top_k=args.top_k, filters=filters)
    if args.json:
        print(json.dumps(answer.to_json(explain=args.explain), ensure_ascii=False))
        return 0
    if not streamed:
        print(terminal_safe(answer.text))
    if answer.corrections:
        print(terminal_safe(f"\n({read_as(answer.corrections)})"))
    if answer.citations:
        print("\nSources:")
        for c in answer.citations:
            print(terminal_safe(source_line(c)))
            print(textwrap.indent(textwrap.fill(terminal_safe(f"“{c.quote}”"), 96), "    "))
    if args.explain:
        _print_explain(answer.to_json(explain=True)["explain"])
    return 0


def _print_explain(explain: dict) -> None:
    """The ``--explain`` text: P(answerable), then each top candidate sentence with its probability."""
    print(f"\nWhy: P(answerable) = {explain['p_answerable']:.2f}; top candidate sentences:")
    if not explain["candidates"]:
        print("    (none)")
    for c in explain["candidates"]:
        line = terminal_safe(f"p={c['p']:.2f} {c['doc_id']}: “{c['sentence']}”")
        print(textwrap.indent(textwrap.fill(line, 96, subsequent_indent="    "), "    "))


def cmd_documents(args) -> int:
    from assistant.library import list_documents

    docs = list_documents(_existing_store(_settings(args)))
    if args.json:
        print(json.dumps([d.to_json() for d in docs], ensure_ascii=False))
    else:
        for doc in docs:
            print(terminal_safe(doc.line()))
        print(f"{len(docs)} document{'' if len(docs) == 1 else 's'}", file=sys.stderr)
    return 0


def cmd_remove(args) -> int:
    from assistant.library import remove_documents

    settings = _settings(args)
    removals = remove_documents(_existing_store(settings), args.doc_ids, settings.corpus_dir)
    for removal in removals:
        print(terminal_safe(removal.message), file=sys.stdout if removal.ok else sys.stderr)
    return 0 if all(r.ok for r in removals) else 1


def cmd_config(args) -> int:
    settings = _settings(args)
    data = settings.public_dict()
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        width = max(map(len, data))
        for key, value in data.items():
            print(f"{key:<{width}}  {value}")
    return 0


def cmd_eval(args) -> int:
    from assistant.evaluation import eval_command

    return eval_command(_settings(args), args.documents, args.questions, out=args.out,
                        fresh_store=args.store is None and args.collection is None, limit=args.limit,
                        top_k=_top_k(args.top_k), baseline=args.baseline, update_baseline=args.update_baseline,
                        name=args.name, progress=not args.quiet)


def cmd_serve(args) -> int:
    from assistant.webapp import serve

    serve(_settings(args, host=args.host, port=args.port, corpus_dir=args.corpus))
    return 0


def cmd_feedback(args) -> int:
    from assistant.feedback import FeedbackStore, entry_json, entry_line, eval_question, export_eval_questions
    from assistant.history import Database

    path = _settings(args).history_path()
    if args.action == "export" and not args.out:
        raise ValueError("feedback export needs --out FILE (the eval questions .jsonl to write)")
    if not path.is_file():
        raise ValueError(f"no history file at {path}: the app writes it beside its store; pass the app's "
                         "--store (or --chroma-url), or set ASSISTANT_HISTORY_DB")
    store = FeedbackStore(Database(path))
    if args.action == "export":
        count = export_eval_questions(store.entries(), args.out)
        print(f"wrote {count} eval question(s) to {args.out}; run them with "
              f"`assistant eval --documents DOCS --questions {args.out}`")
    elif args.action == "counts":
        for row in store.counts_by_day():
            print(json.dumps(row) if args.json else
                  f"{row['day']}  up {row['up']:>4}  down {row['down']:>4}  flagged {row['flagged']:>4}")
    else:
        for entry in store.entries():
            question = eval_question(entry)
            if args.json:
                print(json.dumps({**entry_json(entry), "eval": question}, ensure_ascii=False))
            else:
                print(entry_line(entry) + (f"  -> {question['id']} ({question['type']})" if question else ""))
    return 0


COMMANDS = {"ingest": cmd_ingest, "ask": cmd_ask, "documents": cmd_documents, "remove": cmd_remove,
            "config": cmd_config, "eval": cmd_eval, "serve": cmd_serve, "feedback": cmd_feedback}


if __name__ == "__main__":
    sys.exit(main())
