"""Turn an eval folder's metrics.json into a benchmark figure file under benchmarks/results/.

usage: python benchmarks/summarize_eval.py RUN_DIR OUT.json "COMMAND THAT MADE RUN_DIR" [WALL_SECONDS]
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


from medtune.manifest import cpu_model  # noqa: E402,F401 - the benchmark scripts import it from here


def main() -> None:
    run, out, command = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    wall = float(sys.argv[4]) if len(sys.argv) > 4 else None
    m = json.loads((run / "metrics.json").read_text())
    man = m["manifest"]
    figure = {
        "what": f"medtune eval of {man['model']['name']} on {m['n_questions']} questions",
        "command": command,
        "commit": man.get("git_commit"),
        "device": {"backend": man["backend"], "cpu": cpu_model(), "cores": os.cpu_count()},
        "versions": man["packages"],
        "model": {k: man["model"][k] for k in ("name", "kind", "note", "sha256")},
        "data": [{k: s[k] for k in ("path", "format", "records", "sha256")} for s in man["data"]["sources"]],
        "template": man["template"],
        "accuracy": {name: {"accuracy": r["accuracy"], "ci95": r["ci95"], "macro_f1": r["macro_f1"],
                            "ece": r["ece"], "predicted_letters": r["predicted_letters"]}
                     for name, r in m["results"].items()},
        "baselines": m["baselines"],
        "timing": {"process_wall_s": wall, "load_s": m["timing"]["load_s"], "score_s": m["timing"]["score_s"],
                   "per_scorer_s": m["timing"]["per_scorer_s"], "questions_per_s": m["timing"]["questions_per_s"]},
        "note": "Accuracy comes from real (dequantized 4-bit) SmolLM2-135M-Instruct weights. Timing was taken on "
                "a shared 2-core machine; other work ran beside it for part of the run, so q/s is a lower bound.",
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figure, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
