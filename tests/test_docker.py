"""The Docker images carry what their documentation runs: every repository path a documented `docker run`
command uses (configs/..., benchmarks/...) exists here and is inside what the Dockerfile copies or links.
(No Docker engine runs in CI: the Dockerfiles are read, not built.)"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

DOCKERFILES = sorted((ROOT / "docker").glob("Dockerfile.*"))
PATH_TOKEN = re.compile(r"^(?:configs|benchmarks|medtune|docs)/[\w./-]+$")


def image_tree(dockerfile: Path) -> tuple[set[str], dict[str, str]]:
    """(top-level names COPY brings into the work directory, links made there: name -> target)."""
    text = dockerfile.read_text().replace("\\\n", " ")
    copied: set[str] = set()
    links: dict[str, str] = {}
    for line in text.splitlines():
        words = line.split()
        if words[:1] == ["COPY"]:
            sources = [w for w in words[1:-1] if not w.startswith("--")]
            copied.update(Path(s).parts[0] for s in sources)
        if words[:1] == ["RUN"]:
            for m in re.finditer(r"ln -s\w* (\S+) (\S+)", line):
                links[m.group(2)] = m.group(1)
    return copied, links


def in_image(path: str, copied: set[str], links: dict[str, str]) -> bool:
    """Whether a path relative to the work directory exists in the image."""
    first, _, rest = path.partition("/")
    if first in links:
        return in_image(f"{links[first]}/{rest}" if rest else links[first], copied, links)
    return first in copied


def documented_runs() -> list[tuple[str, str]]:
    """(where, command) for every `docker run` in the Dockerfiles' headers and the docs."""
    sources = [*DOCKERFILES, ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    runs = []
    for src in sources:
        text = src.read_text()
        text = re.sub(r"\\\n#?\s*", " ", text)  # join continued lines (also inside # comments)
        for line in text.splitlines():
            if "docker run" in line:
                runs.append((src.name, line[line.index("docker run"):].strip(" `")))
    return runs


def test_there_are_documented_runs_and_they_train_a_shipped_recipe():
    runs = documented_runs()
    assert len(runs) >= 3
    assert any("configs/qwen3-1.7b-medmcqa-lora.yaml" in cmd for _, cmd in runs)
    assert any("benchmarks/gpu.sh" in cmd for _, cmd in runs)


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_every_path_a_documented_run_uses_is_in_the_image(dockerfile):
    copied, links = image_tree(dockerfile)
    assert {"medtune", "pyproject.toml", "benchmarks"} <= copied and links.get("configs") == "medtune/configs"
    assert (ROOT / "configs").resolve() == (ROOT / "medtune" / "configs").resolve()
    kind = dockerfile.name.split(".")[-1]
    checked = 0
    for where, cmd in documented_runs():
        if f"medtune:{kind}" not in cmd:
            continue
        for word in shlex.split(cmd.split("#")[0]):
            if PATH_TOKEN.match(word):
                assert (ROOT / word).exists(), f"{where}: {word} does not exist in the repository"
                assert in_image(word, copied, links), f"{where}: {word} is not copied into {dockerfile.name}"
                checked += 1
    assert checked >= 2


def install_steps(dockerfile: Path) -> list[str]:
    """The commands of the RUN instruction that installs medtune, one per `&&`."""
    text = dockerfile.read_text().replace("\\\n", " ")
    run = next(line for line in text.splitlines() if line.startswith("RUN") and "pip install" in line)
    return [step.strip() for step in run[len("RUN"):].split(" && ")]


def test_the_image_keeps_its_torch_and_installs_no_torch(tmp_path):
    """The Dockerfile's own requirements step, run here on the real pyproject.toml: every dependency (core and
    the image's extras) except torch is installed from it, and medtune itself goes in without dependencies."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for dockerfile in DOCKERFILES:
        steps = install_steps(dockerfile)
        code = shlex.split(next(s for s in steps if s.startswith("python3 -c")))[2]
        out = tmp_path / f"{dockerfile.name}.txt"
        (tmp_path / "pyproject.toml").write_bytes((ROOT / "pyproject.toml").read_bytes())
        proc = subprocess.run([sys.executable, "-c", code.replace("/tmp/requirements.txt", str(out))],
                              cwd=tmp_path, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        wanted = out.read_text().splitlines()
        assert wanted and not [d for d in wanted if re.match(r"torch\b", d)]
        assert set(project["dependencies"]) - set(wanted) == {d for d in project["dependencies"]
                                                             if re.match(r"torch\b", d)}
        installs = [shlex.split(s) for s in steps if " pip install " in f" {s} "]
        assert all("--no-deps" in cmd or cmd[cmd.index("-r") + 1] == "/tmp/requirements.txt" for cmd in installs)
        assert any(cmd[-1] == "." and "--no-deps" in cmd for cmd in installs)  # medtune itself


def test_the_checker_notices_a_missing_copy(tmp_path):
    broken = tmp_path / "Dockerfile.x"
    broken.write_text("FROM x\nWORKDIR /opt/medtune\nCOPY medtune ./medtune\n")
    copied, links = image_tree(broken)
    assert in_image("medtune/configs/demo-cpu.yaml", copied, links)
    assert not in_image("configs/qwen3-1.7b-medmcqa-lora.yaml", copied, links)
    assert not in_image("benchmarks/gpu.sh", copied, links)
