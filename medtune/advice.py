"""What to change on this machine: the advice lines of `medtune doctor`, from the facts
`medtune.backend.detect` gathers (tested with fake reports; no GPU needed)."""

from __future__ import annotations

from typing import Mapping

from medtune.backend import GFX_NAMES, VISIBILITY_VARS

NATIVE_GFX = {"gfx900", "gfx906", "gfx908", "gfx90a", "gfx940", "gfx941", "gfx942", "gfx950", "gfx1030",
              "gfx1100", "gfx1101", "gfx1102", "gfx1200", "gfx1201"}
OVERRIDE_FOR = {"gfx1031": "10.3.0", "gfx1032": "10.3.0", "gfx1033": "10.3.0", "gfx1034": "10.3.0",
                "gfx1035": "10.3.0", "gfx1036": "10.3.0", "gfx1103": "11.0.0", "gfx1150": "11.0.0",
                "gfx1151": "11.0.0"}
TUNABLEOP_BOUNDS = ("PYTORCH_TUNABLEOP_MAX_TUNING_DURATION_MS", "PYTORCH_TUNABLEOP_MAX_TUNING_ITERATIONS")
ALLOC_VARS = ("PYTORCH_ALLOC_CONF", "PYTORCH_CUDA_ALLOC_CONF", "PYTORCH_HIP_ALLOC_CONF")


def override_to_gfx(version: str) -> str | None:
    """The gfx target an HSA_OVERRIDE_GFX_VERSION value names: 9.4.2 -> gfx942, 11.0.0 -> gfx1100, 9.0.10 -> gfx90a."""
    try:
        major, minor, step = (int(x) for x in version.split("."))
    except ValueError:
        return None
    return f"gfx{major}{minor:x}{step:x}"


def torch_version_tuple(version: str) -> tuple[int, int]:
    """(2, 13) from '2.13.0+cu130'; (0, 0) when unreadable."""
    try:
        major, minor = version.split("+")[0].split(".")[:2]
        return int(major), int("".join(c for c in minor if c.isdigit()) or 0)
    except ValueError:
        return 0, 0


def alloc_conf_var(kind: str, torch_version: str) -> str:
    """The allocator variable the installed torch reads. torch >= 2.9 reads the device-generic
    PYTORCH_ALLOC_CONF on CUDA and ROCm (c10/core/AllocatorConfig; PYTORCH_CUDA_ALLOC_CONF stays an alias);
    older ROCm builds read PYTORCH_HIP_ALLOC_CONF, older CUDA builds PYTORCH_CUDA_ALLOC_CONF."""
    if torch_version_tuple(torch_version) >= (2, 9):
        return "PYTORCH_ALLOC_CONF"
    return "PYTORCH_HIP_ALLOC_CONF" if kind == "rocm" else "PYTORCH_CUDA_ALLOC_CONF"


def alloc_conf_read(kind: str, torch_version: str) -> tuple[str, ...]:
    """Every allocator variable this torch reads (one set is enough)."""
    new = torch_version_tuple(torch_version) >= (2, 9)
    names = ["PYTORCH_CUDA_ALLOC_CONF"] + (["PYTORCH_HIP_ALLOC_CONF"] if kind == "rocm" else [])
    return tuple(names + (["PYTORCH_ALLOC_CONF"] if new else []))


def tunableop_advice(env: Mapping[str, str], packing: bool | None) -> list[str]:
    """TunableOp tunes every GEMM shape it has not seen; packing makes the token count, and so the GEMM
    shapes, differ at every step, which makes tuning unbounded unless a bound is set."""
    bounded = any(env.get(k) for k in TUNABLEOP_BOUNDS)
    bound = "PYTORCH_TUNABLEOP_MAX_TUNING_DURATION_MS=30 PYTORCH_TUNABLEOP_MAX_TUNING_ITERATIONS=10"
    if env.get("PYTORCH_TUNABLEOP_ENABLED") == "1":
        if packing and not bounded:
            return [f"PYTORCH_TUNABLEOP_ENABLED=1 with train.packing: packed batches give every step new GEMM "
                    f"shapes, so TunableOp keeps tuning (unbounded time): bound it ({bound}) or unset it"]
        return []
    if packing:
        return []  # not advised: shapes vary per step
    if packing is None:
        return ["MI300-class GPU: PYTORCH_TUNABLEOP_ENABLED=1 tunes GEMMs for your shapes (the first run is slower, "
                "later runs faster), worth it only for fixed shapes (evaluation, training without packing); with "
                f"train.packing every step has new shapes: bound the tuning ({bound}) or leave it off"]
    return ["MI300-class GPU, no packing: PYTORCH_TUNABLEOP_ENABLED=1 tunes GEMMs for your shapes (the first run is "
            "slower, later runs faster)"]


def advice(report: dict, *, requested_dtype: str | None = None, quantized: bool = False,
           torch_imported_early: bool = False, packing: bool | None = None, fp8: bool = False) -> list[str]:
    """Concrete suggestions for this machine; each line says what to change and why."""
    out: list[str] = []
    env = report["environment"]
    kind = report["kind"]
    devs = report["devices"]
    if torch_imported_early:
        out.append("torch was imported before medtune set the environment, so device variables "
                   f"({', '.join(k for k in env if k in VISIBILITY_VARS + ('HSA_OVERRIDE_GFX_VERSION',)) or 'none set'}) "
                   "set by medtune came too late: set them in the shell or in the recipe's env: section")
    out.extend(rocm_advice(report, packing))
    if kind in ("cuda", "rocm") and not any(env.get(k) for k in alloc_conf_read(kind, report["torch"])):
        out.append(f"set {alloc_conf_var(kind, report['torch'])}=expandable_segments:True (the allocator variable "
                   f"torch {report['torch'].split('+')[0]} reads) to cut fragmentation: fewer OOMs with varying "
                   "sequence lengths")
    if fp8 and devs and not devs[0].get("fp8"):
        out.append(f"train.fp8 asked for, but {devs[0]['name']} has no FP8 matrix cores (NVIDIA sm_89+, AMD "
                   "gfx942/gfx950 only): set train.fp8=false")
    if env.get("ROCR_VISIBLE_DEVICES") and (env.get("HIP_VISIBLE_DEVICES") or env.get("CUDA_VISIBLE_DEVICES")):
        out.append("ROCR_VISIBLE_DEVICES is applied first; HIP_VISIBLE_DEVICES/CUDA_VISIBLE_DEVICES then count "
                   "from 0 within the devices it left, not by physical index")
    if requested_dtype in ("float16", "fp16") and devs and devs[0]["bf16"]:
        out.append("fp16 was asked for on a GPU with bf16: bf16 has fp32's range and does not overflow into "
                   "NaN; prefer precision bf16")
    if quantized:  # a method over a 4-bit base (qlora): bitsandbytes
        out.extend(qlora_advice(report))
    if kind == "cpu":
        out.append(f"no GPU: training and evaluation run on {report['cpu_threads']} CPU threads in fp32; fine for "
                   "the embedded models and tests, slow for billion-parameter models")
    return out


def rocm_advice(report: dict, packing: bool | None) -> list[str]:
    """The gfx override, TunableOp and hipBLASLt lines for a ROCm GPU (and a stray override elsewhere)."""
    out: list[str] = []
    env, kind, devs = report["environment"], report["kind"], report["devices"]
    override = env.get("HSA_OVERRIDE_GFX_VERSION")
    if kind == "rocm" and devs:
        gfx = devs[0].get("gfx")
        native = set(report.get("arch_list") or NATIVE_GFX)  # what this build ships, else the usual list
        wanted = OVERRIDE_FOR.get(gfx or "") if gfx not in native else None
        if override:
            as_gfx = override_to_gfx(override)
            if gfx in native and as_gfx == gfx:
                out.append(f"HSA_OVERRIDE_GFX_VERSION={override} is useless here: {gfx} "
                           f"({GFX_NAMES.get(gfx, 'this GPU')}) has native kernels; unset it")
            elif gfx in native:
                out.append(f"HSA_OVERRIDE_GFX_VERSION={override} is wrong here: {gfx} "
                           f"({GFX_NAMES.get(gfx, 'this GPU')}) has native kernels, and the override makes it "
                           f"load {as_gfx} kernels; unset it")
            elif wanted and override != wanted:
                out.append(f"HSA_OVERRIDE_GFX_VERSION={override} is wrong for {gfx}: use {wanted}")
        elif wanted:
            out.append(f"{gfx} has no kernels in ROCm's PyTorch: set HSA_OVERRIDE_GFX_VERSION={wanted} "
                       f"(medtune --gfx-override {wanted}) before starting")
        if gfx in ("gfx942", "gfx950"):
            out.extend(tunableop_advice(env, packing))
            if env.get("TORCH_BLAS_PREFER_HIPBLASLT") is None:
                out.append("MI300-class GPU: TORCH_BLAS_PREFER_HIPBLASLT=1 uses hipBLASLt for bf16 GEMMs")
    elif override and kind != "rocm":
        out.append(f"HSA_OVERRIDE_GFX_VERSION={override} does nothing without a ROCm GPU; unset it")
    return out


def qlora_advice(report: dict) -> list[str]:
    """Whether bitsandbytes is there, with a library for this GPU."""
    out: list[str] = []
    kind = report["kind"]
    bnb = report["optional"].get("bitsandbytes")
    backends = report["optional"].get("bitsandbytes_backends", [])
    if not bnb:
        out.append("qlora needs bitsandbytes" + (" built for ROCm (see docs/rocm.md)" if kind == "rocm" else
                                                 ": pip install bitsandbytes"))
    elif kind == "rocm" and "rocm" not in backends:
        out.append("this bitsandbytes has no ROCm library: install the ROCm build (see docs/rocm.md)")
    return out
