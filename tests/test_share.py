"""The Gradio app in headless Chromium, the HTML report, Hub publishing (against a local stand-in for the
Hub's HTTP endpoints) and the Space folder, on a tiny random Llama run."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import CHROMIUM_ARGS, chromium_path, free_port, run_cli, sample_questions


@pytest.fixture(scope="module")
def browser():
    exe = chromium_path()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        yield b
        b.close()


def test_app_in_a_real_browser_matches_ask(browser, tiny_run, sample_jsonl, tmp_path):
    from medtune.serve.answer import Answerer, source_from_run
    from medtune.serve.app import launch

    q = next(q for q in sample_questions(tiny_run, sample_jsonl) if len(q["options"]) == 5)  # needs "+ option"
    answerer = Answerer(source_from_run(str(tiny_run)), device="cpu")
    port = free_port()
    demo = launch(answerer, "127.0.0.1", port, token="s3cret-token", prevent_thread_lock=True, quiet=True)
    try:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"http://127.0.0.1:{port}/", wait_until="load", timeout=90_000)
        # the login form first: a wrong password keeps the app hidden, the token opens it
        for password in ("wrong-token", "s3cret-token"):
            page.wait_for_selector("input[type=password]", timeout=90_000)
            page.locator("input:not([type=password])").first.fill("clinician")
            page.locator("input[type=password]").fill(password)
            page.get_by_role("button", name=re.compile("^login$", re.I)).click()
            if password == "wrong-token":
                page.wait_for_timeout(1500)
                assert page.locator("#medtune-go").count() == 0
        page.wait_for_selector("#medtune-go", timeout=90_000)
        assert "/tmp/" not in page.locator("#medtune-model").inner_text()  # no path of this machine
        assert "not medical advice" in page.locator("#medtune-notice").inner_text()
        assert "adapter" in page.locator("#medtune-model").inner_text()
        assert not page.locator("#medtune-option-E textarea").is_visible()
        for button, box, state in (("add", "E", "visible"), ("add", "F", "visible"), ("remove", "F", "hidden")):
            page.locator(f"#medtune-{button}").click()  # 4 → 5 → 6 → 5 option boxes
            page.wait_for_selector(f"#medtune-option-{box} textarea", state=state, timeout=20_000)
        assert page.locator("#medtune-option-E textarea").is_visible()
        page.locator("#medtune-question textarea").fill(q["question"])
        for letter, text in zip("ABCDE", q["options"]):
            page.locator(f"#medtune-option-{letter} textarea").fill(text)
        page.locator("#medtune-go").click()
        page.wait_for_selector("#medtune-answer", timeout=60_000)
        shown = page.locator("#medtune-answer").get_attribute("data-answer")
        rows = page.locator("#medtune-answer .mt-row")
        probs = {rows.nth(i).get_attribute("data-letter"): float(rows.nth(i).get_attribute("data-prob"))
                 for i in range(rows.count())}
        widths = [rows.nth(i).locator(".mt-fill").evaluate("e => e.getBoundingClientRect().width")
                  for i in range(rows.count())]
        page.screenshot(path=str(tmp_path / "app.png"), full_page=True)
    finally:
        demo.close()
    args = ["ask", "--run", str(tiny_run), "--json", "-q", q["question"]] + sum([["-o", o] for o in q["options"]], [])
    proc = run_cli(*args)
    assert proc.returncode == 0, proc.stderr[-2000:]
    want = json.loads(proc.stdout)["answers"][0]
    assert shown == want["answer"]
    assert list(probs) == ["A", "B", "C", "D", "E"]
    assert probs == pytest.approx(want["probabilities"], abs=1e-6)
    # the bars are drawn in proportion to the probabilities
    top = max(probs, key=probs.get)
    assert widths[list(probs).index(top)] == max(widths) and min(widths) >= 0
    assert (tmp_path / "app.png").stat().st_size > 10_000


def test_report_is_one_self_contained_file(browser, tiny_run, tmp_path):
    proc = run_cli("report", str(tiny_run), "--out", str(tmp_path / "report"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    html_path = tmp_path / "report" / "report.html"
    # the tiny run scored no permuted orders, so there is no orders.png; its final eval has confidences
    pngs = ("accuracy", "subjects", "reliability", "confusion", "letters", "curves", "bias", "risk_coverage")
    for png in pngs:
        assert (tmp_path / "report" / f"{png}.png").stat().st_size > 5_000
    assert not (tmp_path / "report" / "orders.png").exists()
    text = html_path.read_text()
    assert "src=\"data:image/png;base64," in text and "http" not in re.sub(r"<pre id=\"manifest\">.*?</pre>", "",
                                                                              text, flags=re.S)
    final = json.loads((tiny_run / "final" / "metrics.json").read_text())["results"]["letter"]
    page = browser.new_page()
    page.goto(html_path.as_uri())
    assert page.locator("img").count() == len(pngs)
    assert all(w > 0 for w in page.evaluate("Array.from(document.images).map(i => i.naturalWidth)"))
    table = page.locator("#accuracy").inner_text()
    assert f"{final['accuracy']:.3f}" in table and f"[{final['ci95'][0]:.3f}, {final['ci95'][1]:.3f}]" in table
    assert "p-value" in page.locator("#tests").inner_text()
    assert '"git_commit"' in page.locator("#manifest").text_content()


def test_push_dry_run_builds_a_card_that_parses(tiny_run, tmp_path):
    from huggingface_hub import ModelCard

    out = tmp_path / "hub"
    proc = run_cli("push", str(tiny_run), "--repo", "someone/tiny-medtune", "--dry-run", "--out", str(out),
                   "--base-model", "someone/tiny-base")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith(f"medtune: would upload {len([p for p in out.rglob('*') if p.is_file()]) - 1} "
                                  f"files from {out} to private someone/tiny-medtune:")
    for name in ("README.md", "adapter_config.json", "adapter_model.safetensors", "manifest.json",
                 "report/report.html"):
        assert f"  {name}\n" in proc.stdout
    card = ModelCard.load(out / "README.md")
    final = json.loads((tiny_run / "final" / "metrics.json").read_text())["results"]["letter"]
    assert card.data.base_model == "someone/tiny-base" and card.data.library_name == "peft"
    assert card.data.license == "other" and "medtune" in card.data.tags
    [res] = card.data.eval_results
    assert res.task_type == "multiple-choice" and res.metric_type == "accuracy"
    assert res.metric_value == round(final["accuracy"], 4)
    assert f"95% CI {final['ci95'][0]:.3f}-{final['ci95'][1]:.3f}" in res.metric_name
    assert "McNemar" in card.text and "not medical advice" in card.text
    assert json.loads((out / "adapter_config.json").read_text())["base_model_name_or_path"] == "someone/tiny-base"


class FakeHub(BaseHTTPRequestHandler):
    """The Hub endpoints `huggingface_hub` calls to create a repo, read its visibility and commit a folder.
    `repos` holds the repos that exist (id -> private)."""

    calls: list = []
    files: dict = {}
    repos: dict = {}

    def log_message(self, *args):  # quiet
        pass

    def _json(self, obj, code=200):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):  # noqa: N802
        self.calls.append((self.path, self.headers.get("authorization")))
        repo = self.path.removeprefix("/api/models/").split("?")[0]
        if self.path.startswith("/api/models/") and repo in self.repos:
            return self._json({"id": repo, "private": self.repos[repo]})
        return self._json({"error": "Repository not found"}, 404)

    def do_POST(self):  # noqa: N802
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.calls.append((self.path, self.headers.get("authorization")))
        if self.path == "/api/repos/create":
            payload = json.loads(raw)
            self.calls.append(("create", payload))
            repo = f"{payload['organization']}/{payload['name']}"
            url = f"http://{self.headers['Host']}/{repo}"
            if repo in self.repos:  # as the Hub: 409, and the repo keeps its visibility
                return self._json({"error": "You already created this model repo", "url": url}, 409)
            self.repos[repo] = payload.get("visibility") == "private" or payload.get("private") is True
            return self._json({"url": url})
        if self.path == "/api/validate-yaml":
            return self._json({})
        if "/preupload/" in self.path:
            files = json.loads(raw)["files"]
            return self._json({"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                                         for f in files]})
        if "/commit/" in self.path:
            for line in raw.decode().splitlines():
                item = json.loads(line)
                if item["key"] == "file":
                    self.files[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
            return self._json({"commitUrl": f"http://{self.headers['Host']}/someone/tiny-medtune/commit/" + "a" * 40,
                               "commitOid": "a" * 40})
        return self._json({"error": f"unexpected {self.path}"}, 404)


def test_card_model_index_gains_the_permutation_averaged_accuracy(tiny_run):
    from medtune.hub import build_card, run_info

    info = run_info(str(tiny_run))
    info["final"]["permutation"] = {"spec": "cyclic", "letter": {"averaged": {"accuracy": 0.31234, "ci95": [0.2, 0.4]}}}
    card = str(build_card(info, "me/tiny"))
    assert "value: 0.3123" in card
    assert "name: permutation-averaged accuracy, letter scorer, cyclic orders (95% CI 0.200-0.400)" in card


@pytest.fixture
def fake_hub():
    """A running FakeHub with no repos; yields the environment that points huggingface_hub at it."""
    FakeHub.calls, FakeHub.files, FakeHub.repos = [], {}, {}
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeHub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield {"HF_ENDPOINT": f"http://127.0.0.1:{server.server_port}", "HF_TOKEN": "hf_fake_token",
           "HF_HUB_OFFLINE": "0", "HF_HUB_DISABLE_TELEMETRY": "1"}
    server.shutdown()


SECRET, PATIENT = "hf_secret_value_123", "Jane Roe, 54, crushing chest pain"


@pytest.fixture
def private_run(tiny_run, tmp_path):
    """A copy of the tiny run whose recipe sets a secret in env and whose manifests quote a skipped data row
    and a command line with local paths: what must never leave the machine."""
    import shutil

    import yaml

    run = tmp_path / "clinic-run"
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("checkpoints", "tensorboard"))
    for f in [*run.rglob("*.json"), run / "recipe.yaml"]:
        f.write_text(f.read_text().replace(str(tiny_run), str(run)))
    recipe = yaml.safe_load((run / "recipe.yaml").read_text())
    recipe["env"] = {"HF_TOKEN": SECRET}
    (run / "recipe.yaml").write_text(yaml.safe_dump(recipe, sort_keys=False))
    for f in (run / "manifest.json", run / "final" / "metrics.json"):
        doc = json.loads(f.read_text())
        man = doc.get("manifest", doc)
        man.setdefault("recipe", {})["env"] = {"HF_TOKEN": SECRET}
        man["command"] = f"medtune train {run.parent}/recipe.yaml data.train={run.parent}/clinic.jsonl"
        man["data"]["skipped_rows"] = 1
        man["data"]["skipped_examples"] = [f"clinic.jsonl:7: answer: {PATIENT!r} is not one of the options"]
        f.write_text(json.dumps(doc, indent=2))
    return run


def test_push_is_private_and_sends_exactly_the_redacted_folder(private_run, tiny_model_dir, sample_jsonl,
                                                                fake_hub, tmp_path):
    import yaml

    out = tmp_path / "hub"
    dry = run_cli("push", str(private_run), "--repo", "someone/tiny-medtune", "--out", str(out), "--dry-run",
                  "--json", "--base-model", "someone/tiny-base", env=fake_hub)
    assert dry.returncode == 0, dry.stderr[-3000:]
    listed = json.loads(dry.stdout)
    assert listed["private"] is True and listed["uploaded"] is False and not FakeHub.calls  # nothing sent
    proc = run_cli("push", str(private_run), "--repo", "someone/tiny-medtune", "--out", str(out),
                   "--base-model", "someone/tiny-base", env=fake_hub)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.startswith(f"medtune: uploaded {len(listed['files'])} files from {out} to private "
                                  "someone/tiny-medtune:")
    assert f"commit: {fake_hub['HF_ENDPOINT']}/someone/tiny-medtune/commit/{'a' * 40}" in proc.stdout
    create = [c[1] for c in FakeHub.calls if c[0] == "create"][0]
    assert create["name"] == "tiny-medtune" and create["organization"] == "someone"
    assert create.get("visibility") == "private"  # private without being asked
    assert all(auth == "Bearer hf_fake_token" for path, auth in FakeHub.calls if isinstance(path, str)
               and path.startswith("/api/"))
    local = {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert local.pop(".medtune")  # medtune's folder marker stays here
    assert FakeHub.files == local  # every file, byte for byte
    assert sorted((name, len(data)) for name, data in FakeHub.files.items()) == \
        sorted(map(tuple, listed["files"]))  # --dry-run listed exactly what went up
    for name, data in FakeHub.files.items():
        for leak in (str(tmp_path), str(tiny_model_dir), str(sample_jsonl.parent), SECRET, PATIENT,
                     "data.train="):
            assert leak.encode() not in data, (name, leak)
    recipe = yaml.safe_load((private_run / "recipe.yaml").read_text())
    recipe.update(output_dir=".", env={"HF_TOKEN": "<redacted>"})
    recipe["model"]["name"] = f"<local>/{tiny_model_dir.name}"
    recipe["data"]["train"] = ["<local>/sample.jsonl"]
    assert FakeHub.files["recipe.yaml"] == yaml.safe_dump(recipe, sort_keys=False).encode()
    man = json.loads(FakeHub.files["manifest.json"])
    assert man["command"] == "medtune train (arguments not shared)"
    assert man["recipe"] == recipe and man["data"]["skipped_examples"] == [] and man["data"]["skipped_rows"] == 1
    assert man["data"]["sources"][0]["path"] == "<local>/sample.jsonl"
    assert man["model"]["path"] == f"<local>/{tiny_model_dir.name}"
    summary = json.loads(FakeHub.files["metrics.json"])
    assert (summary["output"], summary["compare"]["base"], summary["compare"]["new"]) == ("adapter", "baseline",
                                                                                            "final")
    assert json.loads(FakeHub.files["adapter_config.json"])["base_model_name_or_path"] == "someone/tiny-base"
    assert b"&lt;redacted&gt;" in FakeHub.files["report/report.html"]  # the report's manifest, redacted too


@pytest.mark.parametrize("exists_private, flags, message", [
    (False, [], "the repo exists and is public, but this push is private (the default); nothing was uploaded. "
                "Change the repo first (`hf repos settings someone/tiny-medtune --private`, or its settings page "
                "on the Hub), or publish deliberately with --public"),
    (True, ["--public"], "the repo exists and is private, but this push is public (--public); nothing was "
                         "uploaded. Change the repo first (`hf repos settings someone/tiny-medtune --public`, or "
                         "its settings page on the Hub), or push without --public"),
])
def test_push_refuses_a_repo_of_the_other_visibility(tiny_run, fake_hub, tmp_path, exists_private, flags, message):
    FakeHub.repos["someone/tiny-medtune"] = exists_private
    proc = run_cli("push", str(tiny_run), "--repo", "someone/tiny-medtune", "--out", str(tmp_path / "hub"), *flags,
                   env=fake_hub)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip() == f"someone/tiny-medtune: --repo: {message}"
    assert FakeHub.files == {} and not any("/commit/" in str(c[0]) for c in FakeHub.calls)
    assert FakeHub.repos == {"someone/tiny-medtune": exists_private}  # left as it was


def test_push_public_is_a_deliberate_flag(tiny_run, fake_hub, tmp_path):
    FakeHub.repos["someone/open"] = False
    proc = run_cli("push", str(tiny_run), "--repo", "someone/open", "--out", str(tmp_path / "hub"), "--public",
                   "--json", env=fake_hub)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    assert result["private"] is False and result["uploaded"] is True and "README.md" in FakeHub.files


def test_push_without_the_network_is_one_line(tiny_run, tmp_path):
    env = {"HF_ENDPOINT": f"http://127.0.0.1:{free_port()}", "HF_TOKEN": "hf_fake", "HF_HUB_OFFLINE": "0",
           "HF_HUB_ETAG_TIMEOUT": "2", "HF_HUB_DOWNLOAD_TIMEOUT": "2"}
    proc = run_cli("push", str(tiny_run), "--repo", "someone/x", "--out", str(tmp_path / "hub"), env=env)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.startswith("someone/x: --repo: cannot reach the Hub: ")
    assert "Traceback" not in proc.stderr and (tmp_path / "hub" / "README.md").is_file()


def test_push_refuses_a_bad_repo_id(tiny_run):
    proc = run_cli("push", str(tiny_run), "--repo", "no-owner", "--dry-run")
    assert proc.returncode == 2
    assert proc.stderr.strip() == "no-owner: --repo: must be a Hub repo id: owner/name"


def test_space_folder_runs_the_app(tiny_run, tiny_model_dir, tmp_path):
    import yaml

    out = tmp_path / "space"
    proc = run_cli("space", str(tiny_run), "--out", str(out), "--base-model", str(tiny_model_dir))
    assert proc.returncode == 0, proc.stderr[-2000:]
    meta = yaml.safe_load((out / "README.md").read_text().split("---")[1])
    assert meta["sdk"] == "gradio" and meta["app_file"] == "app.py" and meta["sdk_version"]
    reqs = (out / "requirements.txt").read_text()
    assert "transformers" in reqs and "peft" in reqs and "gradio==" in reqs
    assert (out / "adapter" / "adapter_model.safetensors").is_file() and (out / "medtune" / "cli" / "__init__.py").is_file()
    port = free_port()
    env = {**os.environ, "GRADIO_SERVER_PORT": str(port), "GRADIO_SERVER_NAME": "127.0.0.1",
           "PYTHONPATH": str(out)}
    app = subprocess.Popen([sys.executable, "app.py"], cwd=out, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    try:
        body = None
        for _ in range(240):
            try:
                body = urllib.request.urlopen(f"http://127.0.0.1:{port}/config", timeout=2).read().decode()
                break
            except OSError:
                if app.poll() is not None:
                    break
                time.sleep(0.5)
        assert body is not None, app.stdout.read() if app.poll() is not None else "no answer"
        assert "not medical advice" in body and "medtune-go" in body
        # the Space imports its own copy of medtune
        assert str(out / "medtune") in subprocess.run(
            [sys.executable, "-c", "import medtune; print(medtune.__file__)"], cwd=out, env=env,
            capture_output=True, text=True).stdout
    finally:
        app.terminate()
        app.wait(10)


def test_space_needs_a_hub_base_for_a_local_model(tiny_run, tmp_path):
    proc = run_cli("space", str(tiny_run), "--out", str(tmp_path / "s"))
    assert proc.returncode == 2
    assert "--base-model: the base model is a local folder with no Hub id" in proc.stderr
    assert not (tmp_path / "s").exists()


def test_app_started_with_abstain_below_shows_the_abstention_in_a_real_browser(browser, tiny_run, sample_jsonl):
    from medtune.eval.confidence import policy

    final = json.loads((tiny_run / "final" / "metrics.json").read_text())
    assert policy(final) == (None, None)  # the run fitted no threshold: any abstention is the flag's
    q = sample_questions(tiny_run, sample_jsonl)[0]
    port = free_port()
    app = subprocess.Popen([sys.executable, "-m", "medtune", "serve", "--ui", "--run", str(tiny_run), "--port",
                            str(port), "--abstain-below", "0.999"], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    try:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        for _ in range(240):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/config", timeout=2)
                break
            except OSError:
                assert app.poll() is None, app.stdout.read()
                time.sleep(0.5)
        page.goto(f"http://127.0.0.1:{port}/", wait_until="load", timeout=90_000)
        page.wait_for_selector("#medtune-go", timeout=90_000)
        page.locator("#medtune-question textarea").fill(q["question"])
        if len(q["options"]) == 5:
            page.locator("#medtune-add").click()
            page.wait_for_selector("#medtune-option-E textarea", state="visible", timeout=20_000)
        for letter, text in zip("ABCDE", q["options"]):
            page.locator(f"#medtune-option-{letter} textarea").fill(text)
        page.locator("#medtune-go").click()
        page.wait_for_selector("#medtune-abstain", timeout=60_000)
        answer = page.locator("#medtune-answer")
        shown = {k: answer.get_attribute(f"data-{k}") for k in ("abstain", "answer")}
        reason = page.locator("#medtune-abstain").inner_text()
    finally:
        app.terminate()
        app.wait(10)
    args = ["ask", "--run", str(tiny_run), "--json", "--abstain-below", "0.999", "-q", q["question"]]
    proc = run_cli(*args, *sum([["-o", o] for o in q["options"]], []))
    assert proc.returncode == 0, proc.stderr[-2000:]
    want = json.loads(proc.stdout)["answers"][0]
    assert want["abstain"] is True and want["confidence"] < 0.999
    assert shown == {"abstain": "true", "answer": want["answer"]}  # the pick is still shown, below the abstention
    assert reason == f"Abstain: {want['abstain_reason']}"
    assert re.fullmatch(r"Abstain: confidence \d+\.\d% is below the threshold 99\.9%", reason)
