"""`medtune doctor`: what this machine offers and what to change."""

from __future__ import annotations

import argparse
import json
import sys

from medtune.errors import MedtuneError


def add_arguments(p: argparse.ArgumentParser) -> None:
    """--json, and the device/dtype/method the user plans to use (for advice)."""
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--device", help="exit 1 unless this device can be used (cpu, cuda, cuda:N, mps)")
    p.add_argument("--dtype", help="the dtype you plan to use, for advice (float16, bfloat16, float32)")
    p.add_argument("--method", help="the training method you plan to use, for advice (e.g. qlora)")
    p.add_argument("--packing", action=argparse.BooleanOptionalAction, default=None,
                   help="whether you train with train.packing (TunableOp advice depends on it)")
    p.add_argument("--fp8", action="store_true", help="you plan train.fp8: say whether this GPU has FP8 matrix cores")


def main(args: argparse.Namespace) -> int:
    """Print the report; exit 1 when the requested device cannot be used."""
    from medtune.advice import advice
    from medtune.backend import detect, select_backend
    from medtune.train.methods import get_method

    report = detect()
    report["torch_imported_before_medtune_env"] = args.torch_imported_early
    quantized = args.method is not None and get_method(args.method).quantization is not None
    tips = advice(report, requested_dtype=args.dtype, quantized=quantized, packing=args.packing, fp8=args.fp8,
                  torch_imported_early=args.torch_imported_early and bool(args.devices or args.gfx_override))
    problem = None
    try:
        select_backend(args.device, args.dtype or "auto")
    except MedtuneError as err:
        problem = str(err)
    from medtune.versions import TESTED, installed, outside_tested

    have = {name: installed(name) for name in TESTED}
    report["packages"] = {name: {"installed": have[name], "tested": f"{t.floor} to {t.newest}"}
                          for name, t in TESTED.items()}
    report["advice"] = outside_tested(have) + tips
    from medtune.train.grpo import generation_backend

    how, why = generation_backend(report["kind"], bool(report["optional"].get("vllm")))
    report["grpo_generation"] = {"backend": how, "reason": why}
    report["requested_device"] = {"device": args.device or "auto", "usable": problem is None, "problem": problem}
    print(json.dumps(report, indent=2) if args.json else format_doctor(report))
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
    if "packages" in r:
        lines.append("packages: " + ", ".join(f"{k} {v['installed'] or 'missing'}" for k, v in r["packages"].items()))
    if "grpo_generation" in r:
        lines.append(f"GRPO generation (method grpo): {r['grpo_generation']['reason']}")
    if r["advice"]:
        lines.append("advice:")
        lines.extend(f"  - {a}" for a in r["advice"])
    req = r["requested_device"]
    lines.append(f"requested device {req['device']}: " + ("usable" if req["usable"] else f"NOT usable: {req['problem']}"))
    return "\n".join(lines)
