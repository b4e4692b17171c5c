"""Backend detection and advice with fake torch modules (no GPU is needed), and the proof that
device variables reach the environment before torch is imported."""

from __future__ import annotations

import json
import subprocess
import sys
from types import SimpleNamespace

import pytest

from conftest import ROOT, run_cli
from medtune.advice import advice, override_to_gfx
from medtune.backend import apply_device_env, bf16_supported, detect
from medtune.errors import MedtuneError

GIB = 2 ** 30


def fake_torch(*, hip=None, cuda=None, devices=()):
    """A stand-in for the parts of `torch` that detect() reads."""
    sdp = SimpleNamespace(flash_sdp_enabled=lambda: True, mem_efficient_sdp_enabled=lambda: True,
                          math_sdp_enabled=lambda: True)
    return SimpleNamespace(
        __version__="2.13.0+" + ("rocm6.4" if hip else "cu128" if cuda else "cpu"),
        version=SimpleNamespace(hip=hip, cuda=cuda),
        cuda=SimpleNamespace(is_available=lambda: bool(devices), device_count=lambda: len(devices),
                             get_device_properties=lambda i: devices[i]),
        backends=SimpleNamespace(cuda=sdp, mps=SimpleNamespace(is_available=lambda: False)),
        get_num_threads=lambda: 16,
    )


def amd(name, arch, mem):
    return SimpleNamespace(name=name, gcnArchName=arch, total_memory=mem * GIB, major=9, minor=4,
                           multi_processor_count=304)


MI300X = amd("AMD Instinct MI300X", "gfx942:sramecc+:xnack-", 192)
MI250 = amd("AMD Instinct MI250X/MI250", "gfx90a:sramecc+:xnack-", 64)
RX7900 = amd("Radeon RX 7900 XTX", "gfx1100", 24)
RX6700 = amd("Radeon RX 6700 XT", "gfx1031", 12)
H100 = SimpleNamespace(name="NVIDIA H100 80GB HBM3", total_memory=80 * GIB, major=9, minor=0,
                       multi_processor_count=132)
V100 = SimpleNamespace(name="Tesla V100-SXM2-16GB", total_memory=16 * GIB, major=7, minor=0,
                       multi_processor_count=80)


def test_mi300x():
    r = detect(fake_torch(hip="6.4", devices=[MI300X] * 8), environ={})
    assert r["kind"] == "rocm" and r["torch_build"] == "rocm" and len(r["devices"]) == 8
    d = r["devices"][0]
    assert (d["gfx"], d["family"], d["memory_gib"], d["bf16"]) == ("gfx942", "MI300X/MI300A/MI325X", 192.0, True)
    assert r["default_dtype"] == "bfloat16"
    assert d["fp8"] is True
    tips = advice(r)
    assert any("PYTORCH_TUNABLEOP_ENABLED=1" in t and "bound the tuning" in t for t in tips)
    assert any("TORCH_BLAS_PREFER_HIPBLASLT=1" in t for t in tips)
    assert any(t.startswith("set PYTORCH_ALLOC_CONF=expandable_segments:True (the allocator variable torch 2.13.0 "
                            "reads)") for t in tips)
    assert not any("HSA_OVERRIDE_GFX_VERSION=" in t for t in tips)


def test_mi300x_with_the_prototypes_override_is_useless_not_wrong():
    r = detect(fake_torch(hip="6.4", devices=[MI300X]), environ={"HSA_OVERRIDE_GFX_VERSION": "9.4.2"})
    tips = advice(r)
    assert ("HSA_OVERRIDE_GFX_VERSION=9.4.2 is useless here: gfx942 (MI300X/MI300A/MI325X) has native kernels; "
            "unset it") in tips


def test_rx7900xtx_with_a_wrong_override():
    r = detect(fake_torch(hip="6.4", devices=[RX7900]), environ={"HSA_OVERRIDE_GFX_VERSION": "9.4.2"})
    assert r["devices"][0]["gfx"] == "gfx1100" and r["devices"][0]["bf16"] is True
    tips = advice(r)
    assert ("HSA_OVERRIDE_GFX_VERSION=9.4.2 is wrong here: gfx1100 (RX 7900 XTX/XT, PRO W7900) has native "
            "kernels, and the override makes it load gfx942 kernels; unset it") in tips
    assert not any("TUNABLEOP" in t for t in tips)  # MI300-only advice


def test_consumer_card_that_needs_an_override():
    r = detect(fake_torch(hip="6.4", devices=[RX6700]), environ={})
    assert r["devices"][0]["bf16"] is False and r["default_dtype"] == "float16"
    assert ("gfx1031 has no kernels in ROCm's PyTorch: set HSA_OVERRIDE_GFX_VERSION=10.3.0 "
            "(medtune --gfx-override 10.3.0) before starting") in advice(r)
    r = detect(fake_torch(hip="6.4", devices=[RX6700]), environ={"HSA_OVERRIDE_GFX_VERSION": "11.0.0"})
    assert "HSA_OVERRIDE_GFX_VERSION=11.0.0 is wrong for gfx1031: use 10.3.0" in advice(r)


def test_arch_list_of_the_build_decides_what_is_native():
    torch = fake_torch(hip="6.4", devices=[RX6700])
    torch.cuda.get_arch_list = lambda: ["gfx90a", "gfx942", "gfx1030", "gfx1031", "gfx1100"]
    r = detect(torch, environ={})
    assert r["arch_list"][-1] == "gfx1100"
    assert not any("HSA_OVERRIDE_GFX_VERSION" in t for t in advice(r))  # this build has gfx1031 kernels


def test_mi250_and_visibility_interplay():
    env = {"ROCR_VISIBLE_DEVICES": "2,3", "HIP_VISIBLE_DEVICES": "1"}
    r = detect(fake_torch(hip="6.2", devices=[MI250, MI250]), environ=env)
    assert r["devices"][0]["gfx"] == "gfx90a" and r["devices"][0]["bf16"] is True
    assert r["environment"] == env
    assert any(t.startswith("ROCR_VISIBLE_DEVICES is applied first") for t in advice(r))


def test_h100_and_fp16_advice():
    r = detect(fake_torch(cuda="12.8", devices=[H100]), environ={})
    d = r["devices"][0]
    assert (r["kind"], d["sm"], d["compute_capability"], d["bf16"]) == ("cuda", "sm_90", "9.0", True)
    assert r["sdpa"]["flash"] is True
    tips = advice(r, requested_dtype="float16", quantized=True)
    assert any(t.startswith("fp16 was asked for on a GPU with bf16") for t in tips)
    assert "qlora needs bitsandbytes: pip install bitsandbytes" in tips
    assert any(t.startswith("set PYTORCH_ALLOC_CONF=expandable_segments:True") for t in tips)
    assert d["fp8"] is True


def test_older_nvidia_gets_fp16():
    r = detect(fake_torch(cuda="12.8", devices=[V100]), environ={})
    assert r["devices"][0]["bf16"] is False and r["default_dtype"] == "float16"
    assert bf16_supported("cuda", H100) and not bf16_supported("cuda", V100)


def test_override_parsing():
    assert [override_to_gfx(v) for v in ("9.4.2", "11.0.0", "10.3.0", "9.0.10", "x")] == \
        ["gfx942", "gfx1100", "gfx1030", "gfx90a", None]


def test_apply_device_env_validates():
    env: dict = {}
    apply_device_env("0,1", "11.0.0", environ=env)
    assert env == {"CUDA_VISIBLE_DEVICES": "0,1", "HIP_VISIBLE_DEVICES": "0,1", "HSA_OVERRIDE_GFX_VERSION": "11.0.0"}
    with pytest.raises(MedtuneError, match="--devices: expected device indices"):
        apply_device_env("gpu0", environ={})
    with pytest.raises(MedtuneError, match="--gfx-override: expected a version such as 11.0.0"):
        apply_device_env(None, "gfx1100", environ={})


def test_variables_are_set_before_torch_is_imported(tmp_path):
    """A meta-path hook records the environment at the moment torch is first imported."""
    code = r'''
import json, os, sys
seen = {}
class Watch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" and not seen:
            seen.update({k: os.environ.get(k) for k in
                         ("CUDA_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES", "HSA_OVERRIDE_GFX_VERSION", "MEDTUNE_PROBE")})
            seen["torch_already_loaded"] = "torch" in sys.modules
        return None
sys.meta_path.insert(0, Watch())
from medtune.cli import main
assert "torch" not in sys.modules, "importing medtune.cli imported torch"
rc = main(sys.argv[1:])
print(json.dumps({"rc": rc, "seen": seen}))
'''
    proc = subprocess.run([sys.executable, "-c", code, "--devices", "1", "--gfx-override", "11.0.0", "doctor",
                           "--json"], capture_output=True, text=True, timeout=300)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["rc"] == 0
    assert result["seen"]["CUDA_VISIBLE_DEVICES"] == "1" and result["seen"]["HIP_VISIBLE_DEVICES"] == "1"
    assert result["seen"]["HSA_OVERRIDE_GFX_VERSION"] == "11.0.0"
    assert result["seen"]["torch_already_loaded"] is False

    recipe = tmp_path / "r.yaml"
    recipe.write_text("env:\n  MEDTUNE_PROBE: set-by-recipe\nmodel:\n  name: no-such-model-folder-xyz\n")
    proc = subprocess.run([sys.executable, "-c", code, "train", str(recipe)], capture_output=True, text=True,
                          timeout=300)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["seen"]["MEDTUNE_PROBE"] == "set-by-recipe"  # the recipe's env: came before torch


def test_doctor_cli_json_and_exit_codes():
    proc = run_cli("doctor", "--json")
    assert proc.returncode == 0
    report = json.loads(proc.stdout)
    assert report["kind"] == "cpu" and report["requested_device"]["usable"] is True
    proc = run_cli("doctor", "--device", "cuda")
    assert proc.returncode == 1 and "torch sees no GPU" in proc.stderr


def test_launcher_processes_and_their_gpus():
    from medtune.backend import local_device, processes

    assert processes({}) == (0, 1) and processes({"WORLD_SIZE": "1"}) == (0, 1)
    launched = {"WORLD_SIZE": "4", "LOCAL_RANK": "3", "RANK": "7"}
    assert local_device("cuda", launched) == "cuda:3"  # each process of a launcher uses its own GPU
    assert local_device("cuda", {}) == "cuda" and local_device("cpu", launched) == "cpu"


def test_default_scoring_batch():
    from medtune.backend import Backend, default_batch_size

    def be(kind, threads):
        return Backend(kind=kind, device="cpu" if kind == "cpu" else "cuda", dtype="float32", name="x",
                       threads=threads)

    assert default_batch_size(be("cpu", 2)) == 16 and default_batch_size(be("cpu", 1)) == 8
    assert default_batch_size(be("cuda", 1)) == 64


def test_fp8_only_where_there_are_fp8_matrix_cores():
    from medtune.backend import fp8_supported

    ada = SimpleNamespace(major=8, minor=9)
    a100 = SimpleNamespace(major=8, minor=0)
    mi355 = amd("AMD Instinct MI355X", "gfx950:sramecc+:xnack-", 288)
    assert [fp8_supported("cuda", p) for p in (H100, ada, a100, V100)] == [True, True, False, False]
    assert [fp8_supported("rocm", p) for p in (MI300X, mi355, MI250, RX7900, RX6700)] == \
        [True, True, False, False, False]
    assert not fp8_supported("cpu", None) and not fp8_supported("mps", None)
    r = detect(fake_torch(hip="6.4", devices=[MI250]), environ={})
    assert ("train.fp8 asked for, but AMD Instinct MI250X/MI250 has no FP8 matrix cores (NVIDIA sm_89+, AMD "
            "gfx942/gfx950 only): set train.fp8=false") in advice(r, fp8=True)
    assert not any("fp8" in t for t in advice(detect(fake_torch(hip="6.4", devices=[MI300X]), environ={}), fp8=True))


@pytest.mark.parametrize("kind,version,expected", [
    ("rocm", "2.13.0+rocm6.4", "PYTORCH_ALLOC_CONF"), ("cuda", "2.11.0+cu130", "PYTORCH_ALLOC_CONF"),
    ("cuda", "2.9.1", "PYTORCH_ALLOC_CONF"), ("rocm", "2.8.0+rocm6.3", "PYTORCH_HIP_ALLOC_CONF"),
    ("cuda", "2.6.0+cu124", "PYTORCH_CUDA_ALLOC_CONF"), ("rocm", "2.7.1a0+git", "PYTORCH_HIP_ALLOC_CONF")])
def test_allocator_advice_names_the_variable_the_installed_torch_reads(kind, version, expected):
    from medtune.advice import alloc_conf_var

    assert alloc_conf_var(kind, version) == expected
    torch = fake_torch(hip="6.4" if kind == "rocm" else None, cuda="12.8" if kind == "cuda" else None,
                       devices=[MI300X if kind == "rocm" else H100])
    torch.__version__ = version
    tips = advice(detect(torch, environ={}))
    assert any(t.startswith(f"set {expected}=expandable_segments:True") for t in tips)
    # any variable this torch reads counts as set: no advice then
    assert not any("expandable_segments" in t for t in advice(detect(torch, environ={expected: "x:1"})))


def test_an_old_torch_ignores_the_generic_variable():
    torch = fake_torch(hip="6.3", devices=[MI300X])
    torch.__version__ = "2.8.0+rocm6.3"
    tips = advice(detect(torch, environ={"PYTORCH_ALLOC_CONF": "expandable_segments:True"}))
    assert any(t.startswith("set PYTORCH_HIP_ALLOC_CONF=expandable_segments:True") for t in tips)


def test_tunableop_is_advised_only_without_packing_or_bounded():
    mi300 = detect(fake_torch(hip="6.4", devices=[MI300X]), environ={})
    assert any(t.startswith("MI300-class GPU, no packing: PYTORCH_TUNABLEOP_ENABLED=1") for t in
               advice(mi300, packing=False))
    assert not any("TUNABLEOP" in t for t in advice(mi300, packing=True))
    on = detect(fake_torch(hip="6.4", devices=[MI300X]), environ={"PYTORCH_TUNABLEOP_ENABLED": "1"})
    warned = [t for t in advice(on, packing=True) if "TUNABLEOP" in t]
    assert warned == ["PYTORCH_TUNABLEOP_ENABLED=1 with train.packing: packed batches give every step new GEMM "
                      "shapes, so TunableOp keeps tuning (unbounded time): bound it "
                      "(PYTORCH_TUNABLEOP_MAX_TUNING_DURATION_MS=30 PYTORCH_TUNABLEOP_MAX_TUNING_ITERATIONS=10) "
                      "or unset it"]
    bounded = detect(fake_torch(hip="6.4", devices=[MI300X]),
                     environ={"PYTORCH_TUNABLEOP_ENABLED": "1", "PYTORCH_TUNABLEOP_MAX_TUNING_DURATION_MS": "30"})
    assert not any("TUNABLEOP" in t for t in advice(bounded, packing=True))
    assert bounded["environment"]["PYTORCH_TUNABLEOP_MAX_TUNING_DURATION_MS"] == "30"


def test_a_missing_optional_module_is_one_line_naming_the_extra(monkeypatch):
    from medtune.backend import have, need

    class Block:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "datasets":
                raise ModuleNotFoundError(f"No module named {name!r}")
            return None

    monkeypatch.setattr(sys, "meta_path", [Block(), *sys.meta_path])
    for name in [m for m in sys.modules if m.split(".")[0] == "datasets"]:
        monkeypatch.delitem(sys.modules, name)
    with pytest.raises(MedtuneError) as err:
        need("datasets", "hf: data")
    assert str(err.value) == 'hf: data needs datasets, which is not installed: pip install "medtune[hub]"'
    with pytest.raises(MedtuneError) as err:
        need("datasets.load", "hf: data", path="hf:a/b:train")
    assert str(err.value) == 'hf:a/b:train: hf: data needs datasets, which is not installed: pip install "medtune[hub]"'
    assert not have("datasets") and have("json")
    assert need("json", "reading JSON").dumps([1]) == "[1]"


def test_doctor_names_a_core_package_outside_the_tested_range_with_the_fix():
    from medtune.versions import TESTED, outside_tested

    ok = {name: t.newest for name, t in TESTED.items()}
    assert outside_tested(ok) == []
    assert outside_tested({**ok, "torch": "2.11.0+cu130"}) == []  # a vendor build inside the range
    assert outside_tested({**ok, "transformers": "4.57.1"}) == [
        "transformers 4.57.1 is older than medtune supports (tested 5.0 to "
        f"{TESTED['transformers'].newest}): pip install 'transformers>=5.0,<6'"]
    assert outside_tested({**ok, "accelerate": None}) == [
        "accelerate is not installed; medtune needs it: pip install 'accelerate>=1.10.1'"]
    newer = outside_tested({**ok, "peft": "9.0.0"})
    assert newer == [f"peft 9.0.0 is newer than medtune has been tested on (tested 0.18 to "
                     f"{TESTED['peft'].newest}); if something breaks: pip install 'peft=={TESTED['peft'].newest}'"]


def test_tested_floors_are_the_declared_lower_bounds():
    """Declared = tested: pyproject's lower bound of each core package is the floor CI's floor leg installs."""
    import re
    import tomllib

    from medtune.versions import TESTED

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    declared = {re.split(r"[<>=!~ ]", d, 1)[0]: d for d in deps}
    for name, tested in TESTED.items():
        assert declared.get(name) == tested.spec, name


def test_doctor_prints_the_installed_core_packages():
    proc = run_cli("doctor", "--json")
    packages = json.loads(proc.stdout)["packages"]
    import transformers

    assert packages["transformers"]["installed"] == transformers.__version__
    assert set(packages) >= {"torch", "transformers", "peft", "accelerate", "huggingface_hub", "numpy"}
