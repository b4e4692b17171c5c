"""The `medtune` command line: parse, then call one function per verb (imported lazily, so that
torch is never imported before the environment is set up)."""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import Any, Callable, Sequence

from medtune import __version__
from medtune.errors import MedtuneError


def _add_data_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("reading the data")
    g.add_argument("--format", help="medmcqa, medqa, pubmedqa, mmlu, medtune, swag or generic "
                                    "(default: detected from the fields)")
    g.add_argument("--cop-base", type=int, choices=(0, 1),
                   help="answer indices count from 0 (MedMCQA on the Hub) or 1 (the original release); "
                        "needed only when the data cannot tell")
    g.add_argument("--on-bad-row", choices=("error", "skip"), default="error",
                   help="stop at the first bad row (default) or skip bad rows and count them")
    g.add_argument("--map", nargs="+", metavar="KEY=COLUMN",
                   help="generic format column mapping, e.g. question=stem options=A,B,C,D answer=label")
    g.add_argument("--split", dest="data_split",
                   help="keep only records of this official split (PubMedQA: test or train_dev)")


def _load_options(args: argparse.Namespace) -> Any:
    from medtune.data.sources import LoadOptions

    columns = None
    if args.map:
        columns = {}
        for pair in args.map:
            key, sep, col = pair.partition("=")
            if not sep or not key or not col:
                raise MedtuneError(f"expected KEY=COLUMN, got {pair!r}", field="--map")
            columns[key.strip()] = col.strip()
    return LoadOptions(format=args.format, cop_base=args.cop_base, on_bad_row=args.on_bad_row,
                       columns=columns, split=args.data_split)


def _report_skipped(report: Any) -> None:
    if report.skipped:
        print(f"medtune: skipped {len(report.skipped)} bad rows (--on-bad-row skip); first: "
              f"{report.skipped[0]}", file=sys.stderr)


# --- verbs -------------------------------------------------------------------------------------

def cmd_data_stats(args: argparse.Namespace) -> int:
    from medtune.data.sources import load_benchmark
    from medtune.data.stats import dataset_stats, format_stats

    items, report = load_benchmark(args.sources, _load_options(args))
    against = None
    if args.against:
        against, _ = load_benchmark(args.against, _load_options(args))
    stats = dataset_stats(items, report, against=against, threshold=args.near_threshold)
    print(json.dumps(stats, indent=2) if args.json else format_stats(stats))
    _report_skipped(report)
    return 0


def cmd_data_validate(args: argparse.Namespace) -> int:
    from medtune.data.sources import load_benchmark

    items, report = load_benchmark(args.sources, _load_options(args))
    for s in report.sources:
        print(f"ok: {s.path}: {s.records} records ({s.format}"
              f"{f', {s.skipped} bad rows skipped' if s.skipped else ''})")
    _report_skipped(report)
    return 0


def cmd_data_split(args: argparse.Namespace) -> int:
    from medtune.data.sources import load_benchmark
    from medtune.data.split import split_and_write

    items, report = load_benchmark(args.sources, _load_options(args))
    summary = split_and_write(items, report, out=args.out, eval_size=args.eval_size,
                              eval_fraction=args.eval_fraction, seed=args.seed,
                              threshold=args.near_threshold)
    print(summary)
    _report_skipped(report)
    return 0


def _eval_config(args: argparse.Namespace, **over: Any) -> Any:
    from medtune.eval.run import EvalConfig

    scorers = [s.strip() for s in ",".join(args.scorer).split(",") if s.strip()]
    kw = dict(data=args.data, model=args.model, adapter=args.adapter, out=args.out, scorers=scorers,
              template=args.template, limit=args.limit, batch_size=args.batch_size,
              max_length=args.max_length, seed=args.seed, device=args.device, dtype=args.dtype,
              trust_remote_code=args.trust_remote_code, load_options=_load_options(args))
    kw.update(over)
    return EvalConfig(**kw)


def cmd_eval(args: argparse.Namespace) -> int:
    if args.compare:
        from medtune.eval.compare import compare_runs, format_compare

        result = compare_runs(args.compare[0], args.compare[1], out=args.out)
        print(format_compare(result))
        return 0
    if not args.data:
        raise MedtuneError("name the questions to score with --data (a file, folder, built-in name such "
                           "as medmcqa-dev, or hf:DATASET:SPLIT)", field="--data")
    import datetime as dt

    from medtune.eval.run import format_table, load_items, evaluate_items

    if args.out is None:
        args.out = f"runs/eval-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"
    cfg = _eval_config(args)
    items, report = load_items(cfg)
    _report_skipped(report)
    metrics = evaluate_items(cfg, items, report)
    from medtune.backend import processes

    if processes()[0] != 0:  # under accelerate launch / torchrun: the first process reports and writes
        return 0
    src = ", ".join(s.path for s in report.sources)
    print(format_table(metrics, f"medtune eval: {metrics['manifest']['model']['name']} on {src}"))
    print(f"wrote {cfg.out}/metrics.json and {cfg.out}/predictions.jsonl")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from medtune.train.recipe import describe_recipe, load_recipe

    if args.help_recipe:
        print("\n".join(describe_recipe()))
        return 0
    recipe = load_recipe(args.recipe, args.overrides)
    from medtune.train.run import run_train  # imports no torch: run_train sets recipe.env first

    summary = run_train(recipe, resume=args.resume)
    print(f"wrote {summary['output']} · run folder {recipe.output_dir} · {summary['total_seconds']:.0f} s")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from medtune.export import export_run

    folder = export_run(args.run, out=args.out, merge=args.merge)
    print(f"wrote {folder}")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from medtune.backend import advice, detect, select_backend

    report = detect()
    report["torch_imported_before_medtune_env"] = args.torch_imported_early
    tips = advice(report, requested_dtype=args.dtype, method=args.method,
                  torch_imported_early=args.torch_imported_early and bool(args.devices or args.gfx_override))
    problem = None
    try:
        select_backend(args.device, args.dtype or "auto")
    except MedtuneError as err:
        problem = str(err)
    report["advice"] = tips
    report["requested_device"] = {"device": args.device or "auto", "usable": problem is None, "problem": problem}
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(format_doctor(report))
    if problem:
        print(f"medtune: error: {problem}", file=sys.stderr)
        return 1
    return 0


def format_doctor(r: dict) -> str:
    """The human-readable doctor report."""
    lines = [f"backend: {r['kind']} · torch {r['torch']} ({r['torch_build']} build"
             + (f", HIP {r['hip_version']}" if r["hip_version"] else "")
             + (f", CUDA {r['cuda_version']}" if r["cuda_version"] else "") + ")"]
    for d in r["devices"]:
        arch = d.get("gfx") or d.get("sm")
        lines.append(f"  GPU {d['index']}: {d['name']} · {d['memory_gib']} GiB · {arch}"
                     f"{' (' + d['family'] + ')' if d.get('family') else ''} · bf16 {'yes' if d['bf16'] else 'no'}")
    if not r["devices"]:
        lines.append(f"  no GPU; {r['cpu_threads']} CPU threads")
    lines.append(f"default dtype: {r['default_dtype']} · SDPA kernels: "
                 + ", ".join(k for k, v in r["sdpa"].items() if v))
    env = r["environment"]
    lines.append("environment: " + (", ".join(f"{k}={v}" for k, v in env.items()) or "no device variables set"))
    opt = r["optional"]
    lines.append("optional: " + ", ".join(f"{k} {v or 'no'}" for k, v in opt.items() if not k.endswith("_backends")))
    if r["advice"]:
        lines.append("advice:")
        lines.extend(f"  - {a}" for a in r["advice"])
    req = r["requested_device"]
    lines.append(f"requested device {req['device']}: " + ("usable" if req["usable"] else f"NOT usable: {req['problem']}"))
    return "\n".join(lines)


def cmd_plan(args: argparse.Namespace) -> int:
    from medtune.plan import format_plan, plan, table

    if args.table:
        print(table(args.model, batch=args.batch, seq_len=args.seq_len, grad_ckpt=args.grad_ckpt))
        return 0
    result = plan(args.model, args.method, args.gpu, batch=args.batch, seq_len=args.seq_len,
                  grad_ckpt=args.grad_ckpt, r=args.r)
    print(json.dumps(result, indent=2) if args.json else format_plan(result))
    return 0 if result["estimate"]["fits"] else 1


def _answer_source(args: argparse.Namespace) -> Any:
    from medtune.serve.answer import Source, source_from_run

    if args.run:
        if args.model or args.adapter:
            raise MedtuneError("give either --run or --model/--adapter, not both", field="--run")
        return source_from_run(args.run, args.template, args.scorer)
    return Source(model=args.model, adapter=args.adapter, template=args.template or "auto",
                  scorer=args.scorer or "letter")


def _answerer(args: argparse.Namespace) -> Any:
    from medtune.serve.answer import Answerer

    return Answerer(_answer_source(args), device=args.device, dtype=args.dtype,
                    trust_remote_code=args.trust_remote_code)


def cmd_ask(args: argparse.Namespace) -> int:
    from medtune.serve.answer import Question, format_answer, read_questions

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
    answerer = _answerer(args)
    results = answerer.answer(questions, explain=args.explain, max_new_tokens=args.max_new_tokens)
    if args.json:
        out = {"model": answerer.info(), "answers": results}
        print(json.dumps(out, indent=2, ensure_ascii=False))
        return 0
    for i, (q, r) in enumerate(zip(questions, results)):
        if len(questions) > 1:
            print(f"[{q.id or i + 1}] {q.question[:100]}")
        print(format_answer(q, r))
    info = answerer.info()
    print(f"({info['model']}{' + ' + info['adapter'] if info['adapter'] else ''} · {info['scorer']} scorer · "
          f"{info['backend']['kind']} {info['backend']['dtype']}) {info['notice']}", file=sys.stderr)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    if args.ui == args.api:
        raise MedtuneError("choose one: --ui (the Gradio app) or --api (the HTTP API)", field="--ui/--api")
    answerer = _answerer(args)
    print(f"medtune: serving {answerer.ref.name}"
          f"{' + ' + answerer.source.adapter if answerer.source.adapter else ''} on http://{args.host}:{args.port}"
          f"{'/docs' if args.api else ''}", file=sys.stderr)
    if args.api:
        from medtune.serve.api import serve_api

        serve_api(answerer, args.host, args.port, max_batch=args.max_batch, timeout_s=args.timeout)
    else:
        from medtune.serve.app import launch

        launch(answerer, args.host, args.port)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from medtune.eval.report import build_report

    path = build_report(args.run, args.compare, args.out)
    print(f"medtune: wrote {path} (and its PNGs beside it)")
    return 0


def cmd_push(args: argparse.Namespace) -> int:
    from medtune.hub import push

    r = push(args.run, args.repo, private=args.private, dry_run=args.dry_run, out=args.out,
             base_model=args.base_model, license=args.license)
    if args.json:
        print(json.dumps(r, indent=2))
        return 0
    verb = "would upload" if args.dry_run else "uploaded"
    print(f"medtune: {verb} {len(r['files'])} files from {r['folder']} to "
          f"{'private ' if r['private'] else ''}{r['repo']}:")
    for name, size in r["files"]:
        print(f"  {size:>12,}  {name}")
    if r["uploaded"]:
        print(f"commit: {r['commit_url']}")
    return 0


def cmd_space(args: argparse.Namespace) -> int:
    from medtune.hub import build_space

    out = build_space(args.run, args.out, base_model=args.base_model, title=args.title)
    print(f"medtune: wrote a Gradio Space to {out}: upload it with "
          f"`huggingface-cli upload --repo-type space OWNER/NAME {out}` or run `python {out}/app.py`")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from medtune.bench import run_bench

    common = {"shape": args.shape, "tokenizer": args.tokenizer, "device": args.device}
    if args.kind == "train":
        extra = {"steps": args.steps, "warmup": args.warmup, "compile": args.compile}
    else:
        extra = {"limit": args.limit, "batch_size": args.batch_size, "scorer": args.scorer,
                 "compare_without_prefix": not args.no_compare, "data": args.data, "reference": args.reference}
    out = args.out or f"benchmarks/results/bench-{args.kind}-{_stem(args.recipe)}" \
                      f"{'-' + args.shape if args.shape else ''}.json"
    run_bench(args.kind, args.recipe, args.overrides, out=out, vs=args.vs, **common, **extra)
    return 0


def _stem(path: str | None) -> str:
    from pathlib import Path

    return Path(path).stem if path else "default"


def _add_answer_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", help="a run folder from medtune train/demo (its base model and adapter)")
    p.add_argument("--model", help="embedded name (smollm2-135m-instruct, the default), folder or Hub id")
    p.add_argument("--adapter", help="a PEFT adapter folder or Hub id")
    p.add_argument("--template", help="auto, chat, plain or hackathon (default: the run's, else auto)")
    p.add_argument("--scorer", choices=["letter", "cloze"], help="default: the run's eval scorer, else letter")
    p.add_argument("--device", help="auto (default), cpu, cuda, cuda:N or mps")
    p.add_argument("--dtype", default="auto", help="auto, float32, bfloat16 or float16")
    p.add_argument("--trust-remote-code", action="store_true", help="allow a model's own Python code")


def cmd_demo(args: argparse.Namespace) -> int:
    from medtune.demo import run_demo

    return run_demo(args)


# --- parser ------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="medtune", description="Fine-tune and evaluate language models for "
                                     "clinical multiple-choice QA on ROCm, CUDA and the CPU.")
    parser.add_argument("--version", action="version", version=f"medtune {__version__}")
    parser.add_argument("--devices", help="GPU indices to use, e.g. 0,1 (sets CUDA_VISIBLE_DEVICES and "
                                          "HIP_VISIBLE_DEVICES before torch loads)")
    parser.add_argument("--gfx-override", help="HSA_OVERRIDE_GFX_VERSION for consumer AMD GPUs without native "
                                               "kernels, e.g. 11.0.0 (see medtune doctor)")
    verbs = parser.add_subparsers(dest="verb", metavar="COMMAND", required=True)

    data = verbs.add_parser("data", help="inspect, check and split benchmark files")
    dverbs = data.add_subparsers(dest="data_verb", metavar="ACTION", required=True)
    p = dverbs.add_parser("stats", help="counts per split, subject and answer letter; duplicates")
    p.add_argument("sources", nargs="+", help="files, folders, built-in names (medmcqa-dev) or hf:ID:SPLIT")
    p.add_argument("--against", nargs="+", help="also count questions duplicated in these (e.g. a train set)")
    p.add_argument("--near-threshold", type=float, default=0.8,
                   help="word-trigram Jaccard similarity from which two questions are near-duplicates")
    p.add_argument("--json", action="store_true", help="print JSON")
    _add_data_options(p)
    p.set_defaults(func=cmd_data_stats)
    p = dverbs.add_parser("validate", help="check every row; exit 0 when clean, 2 on a bad row")
    p.add_argument("sources", nargs="+")
    _add_data_options(p)
    p.set_defaults(func=cmd_data_validate)
    p = dverbs.add_parser("split", help="a stable hash train/eval split, near-duplicates kept on one side")
    p.add_argument("sources", nargs="+")
    size = p.add_mutually_exclusive_group(required=True)
    size.add_argument("--eval-size", type=int, help="number of questions held out for evaluation")
    size.add_argument("--eval-fraction", type=float, help="fraction held out (stable as data grows)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--near-threshold", type=float, default=0.8)
    p.add_argument("--out", required=True, help="folder for train.jsonl, eval.jsonl and split.json")
    _add_data_options(p)
    p.set_defaults(func=cmd_data_split)

    p = verbs.add_parser("eval", help="score a model on a benchmark; or compare two eval folders")
    p.add_argument("--model", help="embedded name (smollm2-135m-instruct, the default), folder or Hub id")
    p.add_argument("--adapter", help="a PEFT adapter folder or Hub id")
    p.add_argument("--data", nargs="+", help="files, folders, built-in names (medmcqa-dev) or hf:ID:SPLIT")
    p.add_argument("--out", help="results folder (default runs/eval-TIMESTAMP)")
    p.add_argument("--scorer", nargs="+", default=["letter"],
                   help="letter (default), cloze, or both: --scorer letter cloze")
    p.add_argument("--template", default="auto", help="auto (chat if the tokenizer has one), chat, plain, "
                                                      "hackathon")
    p.add_argument("--limit", type=int, help="score only the first N questions")
    p.add_argument("--batch-size", type=int,
                   help="questions per forward pass for a question of median length; longer ones go fewer to "
                        "a pass, shorter ones more (default on CPU 8 per one-thread process, else 16; 64 on GPU)")
    p.add_argument("--max-length", type=int, help="cut contexts from the left beyond this many tokens")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", help="auto (default), cpu, cuda, cuda:N or mps")
    p.add_argument("--dtype", default="auto", help="auto, float32, bfloat16 or float16")
    p.add_argument("--trust-remote-code", action="store_true", help="allow a model's own Python code")
    p.add_argument("--compare", nargs=2, metavar=("BASE_DIR", "NEW_DIR"),
                   help="print two eval folders side by side with a paired McNemar test")
    _add_data_options(p)
    p.set_defaults(func=cmd_eval)

    p = verbs.add_parser("train", help="fine-tune from a recipe: medtune train RECIPE.yaml [key=value ...]")
    p.add_argument("recipe", nargs="?", help="a YAML recipe (see configs/); omitted: the defaults")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides, e.g. train.lr=1e-4")
    p.add_argument("--resume", action="store_true", help="continue the run in output_dir from its last "
                                                         "complete checkpoint")
    p.add_argument("--help-recipe", action="store_true", help="list every recipe key with its default and help")
    p.set_defaults(func=cmd_train)

    p = verbs.add_parser("export", help="write a run's model: the adapter merged into the base weights")
    p.add_argument("run", help="a run folder written by medtune train")
    p.add_argument("--merge", action="store_true", required=True, help="merge the adapter into the weights")
    p.add_argument("--out", required=True, help="folder for the merged safetensors model")
    p.set_defaults(func=cmd_export)

    p = verbs.add_parser("doctor", help="what this machine offers (ROCm, CUDA, MPS, CPU) and what to change")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--device", help="exit 1 unless this device can be used (cpu, cuda, cuda:N, mps)")
    p.add_argument("--dtype", help="the dtype you plan to use, for advice (float16, bfloat16, float32)")
    p.add_argument("--method", help="the training method you plan to use, for advice (e.g. qlora)")
    p.set_defaults(func=cmd_doctor)

    p = verbs.add_parser("plan", help="will a model fit for training: memory per part, per method and GPU")
    p.add_argument("--model", required=True, help="local folder, config.json, shipped shape (qwen3-1.7b), "
                                                  "embedded name or Hub id; only config.json is read")
    p.add_argument("--method", default="lora", help="qlora, lora, dora or full")
    p.add_argument("--gpu", default="h100", help="mi300x, mi325x, mi250, h100, h200, a100-40, a100-80, rx7900xtx, "
                                                "rtx4090 or cpu")
    p.add_argument("--seq-len", type=int, default=512)
    p.add_argument("--batch", type=int, default=8, help="micro-batch size")
    p.add_argument("--grad-ckpt", action="store_true", help="with gradient checkpointing")
    p.add_argument("--r", type=int, default=16, help="LoRA rank")
    p.add_argument("--table", action="store_true", help="methods x GPUs: the largest micro-batch that fits")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_plan)

    p = verbs.add_parser("ask", help="answer a question: the option probabilities from the eval scorer")
    p.add_argument("--question", "-q", help="the question text")
    p.add_argument("--option", "-o", action="append", help="an option (repeat 2 to 10 times, in order A, B, ...)")
    p.add_argument("--context", help="optional context, e.g. an abstract")
    p.add_argument("--file", "-f", help="JSON or JSONL questions ({question, options, context?, id?}); - for stdin")
    p.add_argument("--explain", action="store_true", help="also write a short greedy explanation")
    p.add_argument("--max-new-tokens", type=int, default=96, help="length bound of the explanation")
    p.add_argument("--json", action="store_true", help="print JSON")
    _add_answer_options(p)
    p.set_defaults(func=cmd_ask)

    p = verbs.add_parser("serve", help="serve a model: the Gradio app (--ui) or the HTTP API (--api)")
    p.add_argument("--ui", action="store_true", help="the Gradio app")
    p.add_argument("--api", action="store_true", help="the HTTP API (FastAPI; OpenAPI at /docs)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--max-batch", type=int, default=32, help="API: questions per shared forward pass")
    p.add_argument("--timeout", type=float, default=30.0, help="API: seconds before a request gets 504")
    _add_answer_options(p)
    p.set_defaults(func=cmd_serve)

    p = verbs.add_parser("report", help="one self-contained HTML report of a run (plots embedded)")
    p.add_argument("run", help="a training run folder, or an eval folder")
    p.add_argument("--compare", metavar="OTHER", help="another run or eval folder to set beside it")
    p.add_argument("--out", help="folder for report.html and the PNGs (default RUN/report)")
    p.set_defaults(func=cmd_report)

    p = verbs.add_parser("push", help="publish a run to the Hugging Face Hub: card, adapter, report, manifest")
    p.add_argument("run", help="a run folder from medtune train/demo")
    p.add_argument("--repo", required=True, help="the Hub repo id, owner/name")
    p.add_argument("--private", action="store_true")
    p.add_argument("--dry-run", action="store_true", help="build the folder and list what would go up; no upload")
    p.add_argument("--out", help="where to build the folder (default RUN/hub)")
    p.add_argument("--base-model", help="the base model's Hub id, when the run used a local folder")
    p.add_argument("--license", help="the card's license (default: the base model's, else other)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_push)

    p = verbs.add_parser("space", help="write a ready Hugging Face Space folder running the app on a run")
    p.add_argument("run", help="a run folder from medtune train/demo")
    p.add_argument("--out", required=True, help="the Space folder to write")
    p.add_argument("--base-model", help="the base model's Hub id, when the run used a local folder")
    p.add_argument("--title", help="the Space title")
    p.set_defaults(func=cmd_space)

    p = verbs.add_parser("bench", help="throughput of a recipe's training step or evaluation; writes JSON")
    p.add_argument("kind", choices=["train", "eval"])
    p.add_argument("recipe", nargs="?", help="a YAML recipe or shipped recipe name; omitted: the defaults")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted recipe overrides")
    p.add_argument("--shape", help="build this architecture with random weights instead (e.g. qwen3-1.7b)")
    p.add_argument("--tokenizer", help="tokenizer folder or Hub id (default: the recipe's model)")
    p.add_argument("--vs", metavar="RECIPE", help="also run this recipe in the same process and print the ratio")
    p.add_argument("--steps", type=int, default=20, help="train: timed optimizer steps")
    p.add_argument("--warmup", type=int, default=5, help="train: untimed steps first")
    p.add_argument("--compile", action="store_true", help="train: torch.compile the model")
    p.add_argument("--limit", type=int, help="eval: only the first N questions")
    p.add_argument("--data", nargs="+", help="eval: these sources instead of the recipe's")
    p.add_argument("--batch-size", type=int, help="eval: questions per forward pass (of median length)")
    p.add_argument("--scorer", choices=["letter", "cloze"], help="eval: default the recipe's eval scorer")
    p.add_argument("--no-compare", action="store_true", help="eval: skip the run without the prefix cache")
    p.add_argument("--reference", metavar="EVAL", help="eval: count predictions equal to this recorded eval's "
                   "(a folder with predictions.jsonl, matched by question id)")
    p.add_argument("--device", help="auto (default), cpu, cuda, cuda:N")
    p.add_argument("--out", help="JSON file (default benchmarks/results/bench-KIND-RECIPE[-SHAPE].json)")
    p.set_defaults(func=cmd_bench)

    p = verbs.add_parser("demo", help="the main job: baseline eval, LoRA fine-tune, eval and comparison on the "
                                      "embedded model and the shipped MedMCQA data (configs/demo-cpu.yaml)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="recipe overrides, e.g. train.max_steps=10")
    p.set_defaults(func=cmd_demo)
    return parser


OVERRIDE = re.compile(r"^[A-Za-z_][\w.]*=")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; user errors print one line and exit 2, never a traceback."""
    torch_imported_early = "torch" in sys.modules  # medtune itself never imports it before this point
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # KEY=VALUE overrides written after options (argparse only takes them before)
        if hasattr(args, "overrides") and all(OVERRIDE.match(x) for x in extra):
            args.overrides = [*(args.overrides or []), *extra]
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.torch_imported_early = torch_imported_early
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        if args.devices is not None or args.gfx_override is not None:
            from medtune.backend import apply_device_env

            for warning in apply_device_env(args.devices, args.gfx_override):
                print(f"medtune: warning: {warning}", file=sys.stderr)
        return func(args)
    except MedtuneError as err:
        print(str(err) if err.path else f"medtune: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("medtune: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 141
