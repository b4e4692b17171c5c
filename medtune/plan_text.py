"""The memory planner's answers as text: one plan, and the methods x GPUs table."""

from __future__ import annotations

from medtune.parallel import on_gpus
from medtune.plan import GPUS, Arch, estimate, load_config


def _on_layers(p: dict) -> str:
    n, of = p.get("adapted_layers"), p["architecture"]["layers"]
    return f" on {n} of {of} layers" if n and n != of else ""


def format_plan(p: dict) -> str:
    """The planner's answer as text."""
    e = p["estimate"]
    n = p["parameters"]
    gpu = GPUS[e["gpu"]]
    lines = [f"{p['model']}: {n['total'] / 1e9:.3f}B parameters ({p['architecture']['model_type']}, "
             f"{p['architecture']['layers']} layers, vocab {p['architecture']['vocab']:,}); "
             f"LoRA r={p.get('lora_r', 16)} all-linear{_on_layers(p)}: {p['lora_parameters'] / 1e6:.1f}M trainable",
             f"{e['method']} on {gpu[0]} ({e['memory_gib']:.0f} GiB), batch {e['batch']} x {e['seq_len']} tokens"
             f"{', gradient checkpointing' if e['grad_ckpt'] else ''}{on_gpus(p.get('gpus', 1), p.get('strategy'))}:"]
    for k, v in e["parts_gib"].items():
        lines.append(f"  {k:<16}{v:>8.2f} GiB")
    verdict = "fits" if e["fits"] else "does NOT fit"
    lines.append(f"  {'total':<16}{e['total_gib']:>8.2f} GiB -> {verdict}; largest micro-batch that fits: "
                 f"{e['max_batch']}")
    lines.append("methods: " + " · ".join(f"{m} {'fits' if v['fits'] else 'no'} ({v['total_gib']:.1f} GiB, "
                                          f"max batch {v['max_batch']})" for m, v in p["methods"].items()
                                          if "+ckpt" not in m))
    if p.get("time"):
        t = p["time"]
        lines.append(f"time: ~{t['seconds_per_million_tokens']:.0f} s per million training tokens "
                     f"({t['flops_per_token'] / 1e9:.1f} GFLOP a token at {t['assumed_mfu']:.0%} of "
                     f"{t['peak_tflops']} TFLOP/s, the datasheet bf16 peak; an assumption until measured)")
    lines.append(f"lightest method that fits: {p['lightest_fitting_method'] or 'none'} · best-quality method that "
                 f"fits: {p['best_fitting_method'] or 'none'} ({' > '.join(p['preference'])})")
    return "\n".join(lines)


def table(model: str, *, batch: int, seq_len: int, grad_ckpt: bool) -> str:
    """Methods x GPUs: the largest micro-batch that fits at this sequence length (0: does not fit)."""
    from medtune.train.methods import planned_methods

    cfg, source = load_config(model)
    a = Arch.from_config(cfg, source)
    gpus = [g for g in GPUS if g != "cpu"]
    head = f"{'method':<8}" + "".join(f"{g:>11}" for g in gpus)
    lines = [f"{model}: the largest micro-batch that fits at {seq_len} tokens"
             f"{' with gradient checkpointing' if grad_ckpt else ''} ('no': not even batch 1)", head]
    for m in planned_methods():
        cells = []
        for g in gpus:
            e = estimate(a, m, g, batch=batch, seq_len=seq_len, grad_ckpt=grad_ckpt)
            mb = e.max_batch()
            cells.append(f"{mb:>11}" if mb > 0 else f"{'no':>11}")
        lines.append(f"{m:<8}" + "".join(cells))
    return "\n".join(lines)
