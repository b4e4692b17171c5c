"""`medtune space`: a ready Gradio Space folder running medtune's app on a run's adapter (or model)."""

from __future__ import annotations

import shutil
from pathlib import Path

from medtune.errors import MedtuneError
from medtune.hub import EMBEDDED_LICENSES, base_model_id, run_info
from medtune.serve.answer import NOTICE


SPACE_APP = '''"""A Hugging Face Space running medtune's app: {title}.

{notice}
"""
from medtune.serve.answer import Answerer, Source
from medtune.serve.app import CSS, build_app

SOURCE = Source(model={model!r}, adapter={adapter!r}, template={template!r}, scorer={scorer!r})
demo = build_app(Answerer(SOURCE))

if __name__ == "__main__":
    demo.launch(css=CSS)
'''


def build_space(run: str, out: str, base_model: str | None = None, title: str | None = None) -> Path:
    """A Space folder: app.py, requirements.txt, README.md with Space metadata, the adapter (or model)
    and a copy of the medtune package the app imports."""
    import importlib.metadata as md

    import medtune
    from medtune.io import MARKER, check_apart, replace_dir
    from medtune.serve.answer import source_from_run

    info = run_info(run)
    src = source_from_run(run)
    base = base_model_id(info, base_model)
    if info["is_adapter"] and not base:
        raise MedtuneError("the base model is a local folder with no Hub id; a Space needs one: pass "
                           "--base-model OWNER/NAME (or a folder path for a local test)", field="--base-model")
    title = title or f"medtune {info['summary'].get('method')} {Path(run).resolve().name}"
    check_apart(out, [info["folder"], info["trained"]], field="--out")
    with replace_dir(out, field="--out") as tmp:
        trained = "adapter" if info["is_adapter"] else "model"
        shutil.copytree(info["trained"], tmp / trained, ignore=shutil.ignore_patterns(MARKER))
        shutil.copytree(Path(medtune.__file__).parent, tmp / "medtune",
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        app = SPACE_APP.format(title=title, notice=NOTICE, model=base if info["is_adapter"] else trained,
                               adapter=trained if info["is_adapter"] else None, template=src.template,
                               scorer=src.scorer)
        (tmp / "app.py").write_text(app, encoding="utf-8")
        reqs = [r for r in (md.requires("medtune") or []) if "extra ==" not in r]
        reqs = [r.replace("torch==", "torch>=") if r.startswith("torch") else r for r in reqs]
        reqs += [f"gradio=={md.version('gradio')}"]
        (tmp / "requirements.txt").write_text("\n".join(reqs) + "\n", encoding="utf-8")
        lic = EMBEDDED_LICENSES.get(info["model_name"] or "", "other")
        meta = {"title": title[:60], "emoji": "🩺", "colorFrom": "blue", "colorTo": "indigo", "sdk": "gradio",
                "sdk_version": md.version("gradio"), "app_file": "app.py", "pinned": False, "license": lic,
                "models": [base] if base and not Path(base).exists() else [],
                "short_description": "Clinical multiple-choice QA (research tool)"}
        import yaml

        (tmp / "README.md").write_text(f"---\n{yaml.safe_dump(meta, sort_keys=False, allow_unicode=True)}---\n\n"
                                       f"# {title}\n\n{NOTICE}\n\nAnswers clinical multiple-choice questions with "
                                       f"per-option probabilities (the `{src.scorer}` scorer of `medtune eval`).\n",
                                       encoding="utf-8")
    return Path(out)
