"""Where the time goes, against the measured matmul limit: one eval (the demo's 500 held-out questions) and
demo-recipe training steps, under torch.profiler, on the CPU.

    python benchmarks/profile_cpu.py eval  [--dtype float32|bfloat16] [--batch-size 16] [--out JSON]
    python benchmarks/profile_cpu.py train [--steps 2] [--warmup 2] [--out JSON]

Each run: the matmul rate measured in this process before and after (medtune.bench.peak); the work timed
once without the profiler (the wall time and FLOP/s that count) and once under it (the breakdown). The
breakdown sorts every aten op's self time into matmuls, attention, softmax/log-softmax (and cross-entropy),
element-wise and normalisation, copies (host copies, clones, cat, index), the optimizer's own ops, other ops;
what the profiled wall time holds beyond the ops' self times is Python and framework overhead. Eval also
times tokenization (render + token ids) and, around the model calls, the collation of each pass, the copy of
the shared prefix's KV cache and the log-softmax gather. The profiler's own table is written beside the JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CATS = [("matmul", ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::_mkl_", "mkldnn::", "aten::_weight_int")),
        ("attention", ("scaled_dot_product", "_flash_attention", "aten::_efficient_attention")),
        ("softmax/log-softmax", ("softmax", "nll_loss", "cross_entropy")),
        ("optimizer", ("aten::_foreach", "aten::_fused_adam", "aten::addcdiv", "aten::lerp", "aten::sqrt")),
        ("copies", ("aten::copy_", "aten::_to_copy", "aten::clone", "aten::cat", "aten::index", "aten::contiguous",
                    "aten::repeat_interleave", "aten::fill_", "aten::zero_", "aten::empty", "aten::to",
                    "aten::_local_scalar_dense", "aten::item", "aten::scatter", "aten::gather", "aten::embedding")),
        ("element-wise/norm", ("aten::mul", "aten::add", "aten::sub", "aten::div", "aten::rsqrt", "aten::pow",
                               "aten::mean", "aten::silu", "aten::neg", "aten::sum", "aten::where", "aten::masked",
                               "aten::threshold", "aten::exp", "aten::tanh", "aten::sigmoid", "aten::cumsum",
                               "aten::clamp", "aten::mm_backward", "aten::_to_dense", "aten::fused"))]


def categorise(prof, wall: float) -> dict:
    """Self time of every op, by category, and the rest of the wall time as Python/framework overhead."""
    cats: dict[str, float] = {c: 0.0 for c, _ in CATS}
    cats["other ops"] = 0.0
    matmul_flops, ops = 0.0, []
    for e in prof.key_averages():
        if not (e.key.startswith(("aten::", "mkldnn::")) or "::" in e.key and not e.key.startswith(("autograd::", "Optimizer"))):
            continue
        t = e.self_cpu_time_total / 1e6
        cat = next((c for c, keys in CATS if any(k in e.key for k in keys)), "other ops")
        cats[cat] += t
        ops.append({"op": e.key, "self_s": t, "calls": e.count, "category": cat})
        if cat == "matmul":
            matmul_flops += getattr(e, "flops", 0) or 0
    in_ops = sum(cats.values())
    cats["python/framework overhead"] = max(0.0, wall - in_ops)
    ops.sort(key=lambda o: -o["self_s"])
    return {"seconds": cats, "share": {k: v / wall for k, v in cats.items()}, "profiled_wall_s": wall,
            "matmul_flops_counted_by_profiler": matmul_flops,
            "matmul_flops_per_s_inside_matmuls": matmul_flops / cats["matmul"] if cats["matmul"] else None,
            "top_ops": ops[:25]}


class Timed:
    """A callable wrapped so that its wall time adds up (the model, a cache copy, the log-softmax gather)."""

    def __init__(self, fn, label: str, acc: dict):
        self.fn, self.label, self.acc = fn, label, acc

    def __call__(self, *a, **kw):
        import torch

        t0 = time.perf_counter()
        with torch.profiler.record_function(self.label):
            out = self.fn(*a, **kw)
        self.acc[self.label] = self.acc.get(self.label, 0.0) + time.perf_counter() - t0
        return out

    def __getattr__(self, name):
        return getattr(self.fn, name)


def profile_eval(args) -> dict:
    import torch

    from medtune.bench import peak
    from medtune.bench.common import setup
    from medtune.data.prompts import render
    from medtune.eval import batch as batch_mod
    from medtune.eval.scoring import build_request, score_requests
    from medtune.train.recipe import load_recipe
    from medtune.train.trainset import load_train_eval

    recipe = load_recipe(args.recipe, args.overrides)
    s = setup(recipe, None, None, "cpu", for_training=False)
    model, tok = s["model"].eval(), s["tokenizer"]
    items = load_train_eval(recipe)[1][: args.limit]
    t0 = time.perf_counter()
    reqs = [build_request(tok, p.prompt, p.choices) for p in (render(it, s["template"], tok) for it in items)]
    tokenize_s = time.perf_counter() - t0
    n_linear = peak.decoder_linear_params(model)
    before = peak.measure("cpu")
    kw = dict(batch_size=args.batch_size, pad_id=tok.pad_token_id, device="cpu")
    vs_fp32 = None
    if args.dtype != "float32":  # the fp32 pass first, for the agreement and the speed ratio
        fp32, fp32_wall = _timed_pass(model, reqs, kw, {})
        model.to(getattr(torch, args.dtype))
    stats: dict = {}
    plain, wall = _timed_pass(model, reqs, kw, stats)
    if args.dtype != "float32":
        from medtune.bench.common import TIE_TOLERANCE, agreement

        vs_fp32 = {"fp32_wall_s": fp32_wall, "speedup_over_fp32": fp32_wall / wall,
                   **agreement([x.logliks for x in fp32], [x.logliks for x in plain], TIE_TOLERANCE[args.dtype])}
    acc: dict = {}
    originals = batch_mod.expand_cache, batch_mod._target_logprobs
    batch_mod.expand_cache = Timed(originals[0], "KV prefix cache copy", acc)
    batch_mod._target_logprobs = Timed(originals[1], "log-softmax gather", acc)
    timed_model = Timed(model, "model forward", acc)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], record_shapes=True,
                                with_flops=True) as prof:
        t0 = time.perf_counter()
        profiled = score_requests(timed_model, reqs, **kw)
        pwall = time.perf_counter() - t0
    batch_mod.expand_cache, batch_mod._target_logprobs = originals
    peaks = peak.limit(before, peak.measure("cpu"))
    flops = 2 * n_linear * stats["processed"]
    same = sum(a.logliks == b.logliks for a, b in zip(plain, profiled))
    regions = {"model forward (inclusive)": acc.get("model forward", 0.0),
               "KV prefix cache copy": acc.get("KV prefix cache copy", 0.0),
               "log-softmax gather (inclusive)": acc.get("log-softmax gather", 0.0)}
    regions["collation and Python between model calls"] = pwall - sum(regions.values())
    return {"what": "one eval of the demo's held-out questions, letter scorer, shared-prefix cache, token-budget "
                    "passes", "questions": len(reqs), "dtype": args.dtype, "batch_size": args.batch_size,
            "threads": torch.get_num_threads(), "tokenization_s": tokenize_s, "scoring_wall_s": wall,
            "questions_per_s": len(reqs) / wall, "processed_tokens": stats["processed"],
            "padded_positions": stats["padded"], "linear_params": n_linear, "flops": flops,
            "matmul_peak": peaks, "fraction_of_peak": peak.fraction(flops / wall, peaks, args.dtype),
            "against_fp32": vs_fp32,
            "profiled": {"regions_s": regions, **categorise(prof, pwall),
                         "identical_logliks_profiled_vs_not": f"{same}/{len(reqs)}"}}, prof



def _timed_pass(model, reqs, kw, stats):
    """A warm-up pass on one batch, then every request, timed."""
    from medtune.eval.scoring import score_requests

    score_requests(model, reqs[:kw["batch_size"]], **kw)
    t0 = time.perf_counter()
    out = score_requests(model, reqs, stats=stats, **kw)
    return out, time.perf_counter() - t0


def profile_train(args) -> dict:
    import torch
    from transformers import TrainerCallback

    from medtune.bench.train import bench_train
    from medtune.train import build as build_mod
    from medtune.train.recipe import load_recipe

    recipe = load_recipe(args.recipe, args.overrides)
    holder: dict = {}

    class Prof(TrainerCallback):
        """Profiler on over the steps after warm-up; the collator labelled."""

        def on_step_end(self, a, state, control, **kw):
            if state.global_step == args.warmup:
                holder["prof"] = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU],
                                                        record_shapes=True, with_flops=True)
                holder["prof"].__enter__()
                holder["t0"] = time.perf_counter()
            elif state.global_step == args.warmup + args.steps and "prof" in holder:
                holder["wall"] = time.perf_counter() - holder["t0"]
                holder["prof"].__exit__(None, None, None)

    original = build_mod.build_trainer

    def with_profiler(*a, callbacks=(), **kw):
        trainer = original(*a, callbacks=[*callbacks, Prof()], **kw)
        trainer.data_collator = Timed(trainer.data_collator, "collation", holder.setdefault("acc", {}))
        return trainer

    build_mod.build_trainer = with_profiler
    try:
        r = bench_train(recipe, steps=args.steps, warmup=args.warmup, device="cpu")
    finally:
        build_mod.build_trainer = original
    prof, wall = holder["prof"], holder["wall"]
    r.pop("memory", None)
    return {"what": "demo-recipe training steps (medtune bench train's Trainer), profiled after warm-up",
            "bench_train": r, "fraction_of_peak": r["fraction_of_peak"], "profiled_steps": args.steps,
            "profiled": {**categorise(prof, wall), "collation_s_all_steps": holder["acc"].get("collation", 0.0)}}, prof


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("kind", choices=["eval", "train"])
    ap.add_argument("overrides", nargs="*")
    ap.add_argument("--recipe", default=str(ROOT / "configs/demo-cpu.yaml"))
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--note", default="")
    ap.add_argument("--out")
    args = ap.parse_args()
    import torch

    from medtune.manifest import cpu_model, git_commit, package_versions

    torch.set_num_threads(args.threads)
    doc, prof = (profile_eval if args.kind == "eval" else profile_train)(args)
    out = Path(args.out or ROOT / f"benchmarks/results/profile-{args.kind}-demo-cpu.json")
    doc = {"command": "python benchmarks/profile_cpu.py " + " ".join(sys.argv[1:]), "commit": git_commit(),
           "versions": package_versions(), "cpu": cpu_model(), "cores": os.cpu_count(),
           "load_average_at_end": list(os.getloadavg()), "note": args.note, **doc}
    out.write_text(json.dumps(doc, indent=2) + "\n")
    table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=40)
    out.with_suffix(".txt").write_text(doc["command"] + "\n\n" + table + "\n")
    p = doc["profiled"]
    print(json.dumps({k: doc[k] for k in ("fraction_of_peak",) if k in doc}, indent=1))
    for k, v in sorted(p["seconds"].items(), key=lambda kv: -kv[1]):
        print(f"{k:<30}{v:>9.2f} s {p['share'][k]:>7.1%}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
