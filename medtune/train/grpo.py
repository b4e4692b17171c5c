"""`method: grpo`: reinforcement fine-tuning with a verifiable reward (the answer letter), through TRL.

The recipe's `grpo:` section is `GrpoArgs`; `run_grpo(recipe)` sets up, evaluates the base model with
the generative scorer, trains with TRL's GRPOTrainer, evaluates again in the same regime and saves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from medtune.config import opt

BACKENDS = ("auto", "hf", "vllm")


@dataclass
class GrpoArgs:
    num_generations: int = opt(8, "completions sampled per prompt (the group size); the advantage is each "
                                  "reward minus its group's mean")
    max_completion_length: int = opt(256, "longest completion in tokens (longer ones are cut and usually "
                                          "unparseable, so reward 0)")
    max_prompt_length: int = opt(512, "longest prompt in tokens; longer prompts are cut from the left")
    beta: float = opt(0.04, "KL weight against the starting model (0: no reference model, less memory)")
    temperature: float = opt(1.0, "sampling temperature of the completions")
    format_reward_weight: float = opt(0.0, "extra reward for a completion with a readable answer line "
                                           "(0: off; keep it small, e.g. 0.1, below the 1 of a right answer)")
    thinking: bool = opt(False, "let a thinking model think (Qwen3 enable_thinking) while training and in "
                                "the before/after evaluation")
    from_adapter: str | None = opt(None, "start from this SFT adapter folder (trained further) instead of "
                                         "the base model")
    generation_backend: str = opt("auto", "auto (vLLM colocated when importable, else HF generate), hf or vllm")
    vllm_gpu_memory_utilization: float = opt(0.3, "share of GPU memory vLLM may take in colocate mode")
    eval_max_new_tokens: int = opt(256, "generative before/after evaluation: the longest answer in tokens")
    eval_batch_size: int = opt(8, "generative before/after evaluation: questions per generate call")


def run_grpo(recipe: Any) -> dict:
    """GRPO per the recipe; returns the run summary (also written to RUN/metrics.json)."""
    raise NotImplementedError("method grpo is being written (issue 17)")
