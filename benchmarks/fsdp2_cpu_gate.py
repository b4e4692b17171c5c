"""Is accelerate's refusal of FSDP on CPU processes a gate or a limit? Two gloo processes train LoRA on a tiny
random Qwen3 through accelerate's own `Accelerator.prepare`: once as accelerate decides (MULTI_CPU, so DDP),
once with the gate bypassed (AcceleratorState's distributed_type set to FSDP, an FSDP2 plugin added), so that
accelerate's fsdp2_prepare_model calls torch's fully_shard. Prints per-step losses (mean over ranks), the
largest difference between the two, and how many elements of the weights each process holds.

Evidence for docs/multinode.md, not a way to train: medtune does not bypass accelerate's state.
usage: torchrun --standalone --nproc-per-node 2 benchmarks/fsdp2_cpu_gate.py OUT.json [--steps 6]
"""

from __future__ import annotations

import argparse
import json
import sys

import torch
import torch.distributed as dist


def train(mode: str, steps: int) -> dict:
    """Per-step mean loss and the weights' local element count under `mode` ("ddp" or "fsdp2-bypassed")."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, PartialState
    from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin
    from peft import LoraConfig, get_peft_model
    from transformers import Qwen3Config, Qwen3ForCausalLM

    AcceleratorState._reset_state(reset_partial_state=True)
    acc = Accelerator(cpu=True)
    assert acc.distributed_type == DistributedType.MULTI_CPU, acc.distributed_type  # what accelerate decides
    if mode == "fsdp2-bypassed":
        AcceleratorState._shared_state["fsdp_plugin"] = FullyShardedDataParallelPlugin(
            fsdp_version=2, auto_wrap_policy="transformer_based_wrap",
            transformer_cls_names_to_wrap=["Qwen3DecoderLayer"], state_dict_type="SHARDED_STATE_DICT")
        for shared in (AcceleratorState._shared_state, PartialState._shared_state):
            shared["distributed_type"] = DistributedType.FSDP
    torch.manual_seed(0)
    model = Qwen3ForCausalLM(Qwen3Config(vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                         num_attention_heads=4, num_key_value_heads=2, head_dim=16))
    model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["q_proj", "v_proj"]))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    model, opt = acc.prepare(model, opt)
    data = torch.Generator().manual_seed(1)
    out = []
    for _ in range(steps):
        batch = torch.randint(0, 128, (4, 16), generator=data)[2 * acc.process_index:2 * acc.process_index + 2]
        loss = model(input_ids=batch, labels=batch).loss
        acc.backward(loss)
        opt.step()
        opt.zero_grad()
        mean = loss.detach().clone()
        dist.all_reduce(mean)
        out.append(mean.item() / acc.num_processes)
    local = sum(getattr(p, "_local_tensor", p).numel() for p in model.parameters())
    trained = sum(float(getattr(p, "full_tensor", lambda: p)().detach().abs().sum())  # LoRA B starts at 0
                  for n, p in model.named_parameters() if "lora_B" in n)
    return {"wrapper": type(model).__name__, "losses": out, "local_weight_elements": local, "lora_b_abs_sum": trained}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--steps", type=int, default=6)
    a = ap.parse_args()
    runs = {mode: train(mode, a.steps) for mode in ("ddp", "fsdp2-bypassed")}
    sizes = [None] * dist.get_world_size()
    dist.all_gather_object(sizes, {m: r["local_weight_elements"] for m, r in runs.items()})
    if dist.get_rank() == 0:
        import accelerate

        diff = max(abs(x - y) for x, y in zip(runs["ddp"]["losses"], runs["fsdp2-bypassed"]["losses"]))
        result = {"command": f"torchrun --standalone --nproc-per-node 2 benchmarks/fsdp2_cpu_gate.py {a.out} "
                             f"--steps {a.steps}",
                  "torch": torch.__version__, "accelerate": accelerate.__version__, "backend": dist.get_backend(),
                  "runs": runs, "local_weight_elements_per_rank": sizes, "max_loss_diff": diff}
        with open(a.out, "w") as f:
            f.write(json.dumps(result, indent=1) + "\n")
        print(json.dumps(result), file=sys.stderr)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
