"""rag: ask questions over a folder of articles; every answer quotes them with exact citations.

Examples:
  rag index seeds/                      index (or re-index) a folder of .txt/.md/.html/.pdf articles
  rag ask "Where is iFlytek based?"     answer with [n] citations
  rag ask "..." --json                  the answer as one JSON object
  rag ask "..." --format markdown       the answer and its sources as Markdown
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from rag.errors import BadSetting, RagError


def _index_dir_arg(p: argparse.ArgumentParser, store: bool = True) -> None:
    p.add_argument("-i", "--index-dir", default=None,
                   help="index directory (default: $RAG_INDEX_DIR or .rag/index)")
    if store:
        p.add_argument("--store", default=os.environ.get("RAG_STORE") or None, metavar="SPEC",
                       help="where the library lives: local (the index directory, default), "
                            "milvus://HOST:19530/COLLECTION, or milvus-lite:PATH.db (default: $RAG_STORE)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rag", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("index", help="index articles (only changed files are re-embedded)",
                       description="Index .txt, .md, .html and .pdf articles. Example: rag index seeds/")
    p.add_argument("paths", nargs="*", help="folders or files (default: what the index holds, else seeds/)")
    _index_dir_arg(p)
    p.add_argument("-r", "--rebuild", action="store_true", help="re-embed everything, ignoring the current index")
    p.add_argument("-q", "--quiet", action="store_true", help="print only warnings and errors")
    p.add_argument("--include-removed", action="store_true", help="index again the files removed in the chat page")

    p = sub.add_parser("ask", help="answer a question with quoted, cited sentences",
                       description='Answer a question. Example: rag ask "Where is iFlytek based?" --json')
    p.add_argument("question")
    _index_dir_arg(p)
    p.add_argument("-k", "--top-k", type=int, default=None, help="passages to retrieve (default 5)")
    p.add_argument("-f", "--format", choices=("text", "json", "markdown"), default="text",
                   help="text (default); json: one JSON object (as --json); markdown: the quotes with [n] and a "
                        "numbered source list, what the chat page's \"Copy answer with sources\" copies")
    p.add_argument("-j", "--json", action="store_const", const="json", dest="format",
                   help="print the answer as one JSON object (same as --format json)")
    p.add_argument("--min-confidence", default=None, metavar="X",
                   help="refuse when the confidence is below X, from 0 (never refuse) to 1 (default: the model's own)")

    p = sub.add_parser("eval", help="score a question set (ours, BEIR or SQuAD) through the real pipeline",
                       description="Evaluate. Example: rag eval evals/questions.jsonl --report .rag/eval")
    p.add_argument("path", nargs="?", help="questions .jsonl, a BEIR folder, or a SQuAD .json")
    _index_dir_arg(p, store=False)
    p.add_argument("-k", "--top-k", type=int, default=5, help="passages per question (default 5)")
    p.add_argument("-n", "--limit", type=int, default=None, help="run only the first N questions")
    p.add_argument("-p", "--predictions", default=None, help="write one JSON answer per line here")
    p.add_argument("-r", "--report", default=None, help="write report.json, report.md and plots into this folder")
    p.add_argument("-c", "--compare", nargs=2, metavar=("A", "B"), help="compare two report.json files instead")

    p = sub.add_parser("serve", help="serve the chat page and its HTTP API (http://127.0.0.1:7860)",
                       description="Serve the chat and the HTTP API (/api/ask, /docs). Example: rag serve --port 7860")
    p.add_argument("-H", "--host", default="127.0.0.1", help="bind address (default loopback; others need --auth)")
    p.add_argument("-P", "--port", type=int, default=7860)
    _index_dir_arg(p)
    p.add_argument("-a", "--auth", default=None, help="user:password (or RAG_AUTH); required off loopback")
    p.add_argument("-l", "--library", default=None, help="where uploaded articles are kept (default: beside the index)")
    p.add_argument("--api-only", action="store_true", help="serve the HTTP API (/api/…, /docs) without the chat page")

    p = sub.add_parser("bench", help="speed and scale benchmarks (bench.json, bench.md)",
                       description="Benchmark. Example: rag bench --quick --out .rag/bench")
    p.add_argument("-q", "--quick", action="store_true", help="small sizes only (a smoke run)")
    p.add_argument("-o", "--out", default=".rag/bench", help="where bench.json and bench.md go")
    p.add_argument("-s", "--sizes", default=None, help="comma-separated synthetic corpus sizes, in passages (scale: default "
                   "10000,100000,1000000; stores: 10000,100000)")
    p.add_argument("--only", default=None, help="comma-separated steps: latency,build,startup,throughput,scale,library,stores")
    p.add_argument("--store", default=None, help="comma-separated stores for the stores step: local,milvus-lite (default both)")

    p = sub.add_parser("docs", help="list the indexed documents", description="List indexed documents. Example: rag docs")
    _index_dir_arg(p)
    p.add_argument("-j", "--json", action="store_true", help="one JSON object per line")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return {"index": cmd_index, "ask": cmd_ask, "docs": cmd_docs, "eval": cmd_eval, "serve": cmd_serve, "bench": cmd_bench}[args.command](args)
    except RagError as e:
        print(f"rag: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("rag: interrupted; the previous index is unchanged", file=sys.stderr)
        return 130


def cmd_index(args) -> int:
    from rag.pipeline import build

    _check_store(args.store)
    report = build(args.paths or None, args.index_dir, rebuild=args.rebuild, include_removed=args.include_removed,
                   store=args.store)
    for w in report.warnings:
        print(f"warning: {w}", file=sys.stderr)
    if report.excluded:
        print(f"note: {report.excluded} file(s) removed in the chat page stay out of the index; "
              "`rag index --include-removed` brings them back", file=sys.stderr)
    if args.quiet:
        return 0
    where = args.store if args.store not in (None, "", "local") else report.index_dir
    if report.up_to_date:
        print(f"Index at {where} is up to date: {report.documents} documents, {report.chunks} passages.")
    else:
        print(f"Indexed {report.documents} documents into {report.chunks} passages at {where} "
              f"({len(report.added)} added, {len(report.changed)} changed, {len(report.removed)} removed, "
              f"{report.reused} unchanged) in {report.seconds:.1f} s.")
    print('Ask with: rag ask "your question"' + (f" --index-dir {args.index_dir}" if args.index_dir else "")
          + (f" --store {args.store}" if args.store not in (None, "", "local") else ""))
    return 0


def cmd_ask(args) -> int:
    from rag.config import Settings
    from rag.pipeline import Assistant

    if args.top_k is not None and args.top_k < 1:
        raise RagError(f"-k must be at least 1 (got {args.top_k})")
    min_confidence = _probability("--min-confidence", args.min_confidence)
    from rag.pipeline import clean_question

    clean_question(args.question)  # reject an empty question before loading anything heavy
    _check_store(args.store)
    assistant = Assistant.load(args.index_dir, settings=Settings(min_confidence=min_confidence), store=args.store)
    answer = assistant.ask(args.question, k=args.top_k)
    if answer.notice:
        print(f"note: {answer.notice}", file=sys.stderr)
    if args.format == "json":
        print(answer.to_json())
    elif args.format == "markdown":
        from rag.takeaway import answer_markdown

        print(answer_markdown(answer.to_dict()))
    else:
        print(format_answer(answer))
    return 0


def format_answer(answer) -> str:
    """The human-readable answer of `rag ask`: a refusal with the closest passages, or the quotes and
    their citations, saying how sure the answer is (a possible answer says so before its quotes)."""
    from rag.types import POSSIBLE, REFUSE

    if answer.kind == REFUSE:
        lines = ["The articles don't answer this. The closest passages:"]
        lines += [f"  - {h.chunk.doc_id}: {_short(h.chunk.text)}" for h in answer.hits[:3]]
        return "\n".join(lines)
    if answer.kind == POSSIBLE:
        lines = [f"Possible answer (confidence {answer.confidence:.2f}): the articles may not say this exactly.",
                 answer.text]
    else:
        lines = [answer.text, f"Confidence {answer.confidence:.2f}"]
    lines.append("")
    lines += [f'[{c.n}] {c.doc_id}{f", page {c.page}" if c.page else ""}{f" <{c.url}>" if c.url else ""} \u2014 "{c.quote}"'
              for c in answer.citations]
    return "\n".join(lines)


def _probability(flag: str, value: str | None) -> float | None:
    """``value`` as a number from 0 to 1, or None when not given.

    Raises:
        BadSetting: naming ``flag`` and the value.
    """
    if value is None:
        return None
    try:
        x = float(value)
    except ValueError:
        x = float("nan")
    if not 0.0 <= x <= 1.0:  # also false for nan
        raise BadSetting(f"{flag} must be a number from 0 to 1, e.g. {flag} 0.5 (got {value!r})")
    return x


def cmd_eval(args) -> int:
    if args.compare:
        from evals.run import compare

        for p in args.compare:
            if not os.path.isfile(p):
                raise RagError(f"{p} does not exist: give two report.json files written by `rag eval --report DIR`")
        try:
            print(compare(*args.compare))
        except (ValueError, KeyError) as e:
            raise RagError(f"cannot compare: {e}; give two report.json files written by `rag eval --report DIR`") from None
        return 0
    if not args.path:
        raise RagError("give a question set: rag eval evals/questions.jsonl (or a BEIR folder or SQuAD .json)")
    if args.top_k < 1 or (args.limit is not None and args.limit < 1):
        raise RagError("-k and --limit must be at least 1")
    import time
    from pathlib import Path

    from evals import formats, run
    from rag.pipeline import Assistant

    dataset = formats.load(args.path)
    t0 = time.perf_counter()
    index_dir, build_seconds = run.prepare(dataset, args.index_dir)
    assistant = Assistant.load(index_dir)
    records, summary, meta = run.evaluate(assistant, dataset, index_dir, build_seconds, k=args.top_k, limit=args.limit,
                                          progress=sys.stderr.isatty(), started=t0)
    print(run.table(summary))
    if args.predictions:
        run.write_predictions(records, Path(args.predictions))
    if args.report:
        run.write_report(Path(args.report), dataset, records, summary, meta)
        print(f"Report written to {args.report}/report.md")
    return 0


def cmd_serve(args) -> int:
    from ui.app import serve

    _check_store(args.store)
    serve(args.host, args.port, args.index_dir, args.auth, library_dir=args.library, store=args.store,
          page=not args.api_only)
    return 0


def cmd_bench(args) -> int:
    from pathlib import Path

    from evals import bench

    try:
        sizes = [int(x) for x in args.sizes.split(",")] if args.sizes else None
    except ValueError:
        raise RagError(f"--sizes must be numbers separated by commas (got {args.sizes!r})") from None
    only = args.only.split(",") if args.only else None
    if only and set(only) - set(bench.STEPS):
        raise RagError(f"--only takes {', '.join(bench.STEPS)} (got {args.only!r})")
    stores = args.store.split(",") if args.store else None
    if stores and set(stores) - set(bench.STORE_KINDS):
        raise RagError(f"--store takes {', '.join(bench.STORE_KINDS)} (got {args.store!r})")
    results = bench.run(Path(args.out), quick=args.quick, sizes=sizes, only=only, stores=stores)
    if only:
        print(json.dumps({k: results[k] for k in only}, indent=1))
    else:
        print(bench.markdown(results))
        print(f"Written to {args.out}/bench.json and bench.md")
    # A concurrent answer that errs or differs from the sequential one is a defect, not a figure.
    rows = results.get("throughput") or {}
    bad = sum(row.get("errors", 0) + row.get("mismatches", 0) for row in rows.values() if isinstance(row, dict))
    if bad:
        print(f"rag: {bad} concurrent answers failed or differed from the sequential ones; see "
              f"{args.out}/throughput-mismatches.jsonl", file=sys.stderr)
        return 1
    return 0


def cmd_docs(args) -> int:
    from rag.pipeline import open_store

    _check_store(args.store)
    for d in open_store(args.store, args.index_dir).catalog():
        row = {"source": d.doc_id, "title": d.title, "date": d.date, "chars": d.chars, "passages": d.passages,
               "url": d.url, "pages": len(d.pages) or None}
        print(json.dumps(row, ensure_ascii=False) if args.json else
              f"{d.doc_id}\t{d.date or '-'}\t{d.passages} passages\t{d.title or ''}")
    return 0


def _check_store(spec: str | None) -> None:
    """Reject a malformed --store before anything heavy is loaded."""
    if spec not in (None, "", "local"):
        from rag.store.milvus import parse

        parse(spec)


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


if __name__ == "__main__":
    sys.exit(main())
