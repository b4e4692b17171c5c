"""`medtune ask`: answer one question or a file of them."""

from __future__ import annotations

import argparse
import json
import sys

from medtune.cli.common import add_answer_options, answerer
from medtune.errors import MedtuneError


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The question (or a file of them), and which model answers."""
    p.add_argument("--question", "-q", help="the question text")
    p.add_argument("--option", "-o", action="append", help="an option (repeat 2 to 10 times, in order A, B, ...)")
    p.add_argument("--context", help="optional context, e.g. an abstract")
    p.add_argument("--file", "-f", help="JSON or JSONL questions ({question, options, context?, id?}); - for stdin")
    p.add_argument("--explain", action="store_true", help="also write a short greedy explanation")
    p.add_argument("--json", action="store_true", help="print JSON")
    add_answer_options(p)


def main(args: argparse.Namespace) -> int:
    """Answer and print."""
    from medtune.serve.question import Question, format_answer, read_questions

    if args.file and (args.question or args.option):
        raise MedtuneError("give questions either with --question/--option or with --file", field="--file")
    if args.file:
        questions = read_questions(args.file)
    else:
        if not args.question:
            raise MedtuneError("give a question (--question TEXT --option A --option B ...) or --file F",
                               field="--question")
        questions = [Question(args.question, list(args.option or []), args.context)]
        questions[0].check()
    who = answerer(args)
    kw = {"max_new_tokens": args.max_new_tokens} if args.max_new_tokens else {}
    results = who.answer(questions, explain=args.explain, **kw)
    info = who.info()
    if args.json:
        print(json.dumps({"model": info, "answers": results}, indent=2, ensure_ascii=False))
        return 0
    for i, (q, r) in enumerate(zip(questions, results)):
        if len(questions) > 1:
            print(f"[{q.id or i + 1}] {q.question[:100]}")
        print(format_answer(q, r))
    print(f"({info['model']}{' + ' + info['adapter'] if info['adapter'] else ''} · {info['scorer']} scorer · "
          f"{info['backend']['kind']} {info['backend']['dtype']}) {info['notice']}", file=sys.stderr)
    return 0
