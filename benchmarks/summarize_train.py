"""Turn a training run folder into a benchmark figure file under benchmarks/results/.

usage: python benchmarks/summarize_train.py RUN_DIR OUT.json "COMMAND" WALL_SECONDS [NOTE]
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from summarize_eval import cpu_model  # noqa: E402


def main() -> None:
    run, out, command, wall = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], float(sys.argv[4])
    note = sys.argv[5] if len(sys.argv) > 5 else ""
    s = json.loads((run / "metrics.json").read_text())
    man = json.loads((run / "manifest.json").read_text())
    row = s["compare"]["rows"][0]
    figure = {
        "what": f"medtune {s['method']} fine-tune of {s['model']}: before/after on {s['eval_questions']} held-out "
                f"questions ({s['split']['how']})",
        "command": command, "commit": man.get("git_commit"),
        "device": {"backend": man["backend"], "cpu": cpu_model(), "cores": os.cpu_count()},
        "versions": man["packages"], "recipe": man["recipe"],
        "wall_s": wall, "train_s": s["train_seconds"], "steps": s["steps"], "train_loss": s["train_loss"],
        "train_questions": s["train_questions"], "eval_questions": s["eval_questions"],
        "before": {"accuracy": row["base"]["accuracy"], "ci95": row["base"]["ci95"]},
        "after": {"accuracy": row["new"]["accuracy"], "ci95": row["new"]["ci95"]},
        "mcnemar": row["mcnemar"], "baselines": s["compare"]["baselines"], "scorer": row["result"],
        "note": note,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figure, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
