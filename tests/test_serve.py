"""`medtune ask` and the HTTP API, on a tiny random Llama run (machinery, not accuracy)."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest

from conftest import free_port, run_cli


def _recorded(tiny_run):
    return [json.loads(line) for line in (tiny_run / "final" / "predictions.jsonl").read_text().splitlines()]


def test_ask_cli_is_deterministic_and_matches_eval_predictions(tiny_run, questions, tmp_path):
    qfile = tmp_path / "q.jsonl"
    qfile.write_text("".join(json.dumps(q) + "\n" for q in questions))
    runs = []
    for _ in range(2):
        proc = run_cli("ask", "--run", str(tiny_run), "--file", str(qfile), "--json")
        assert proc.returncode == 0, proc.stderr[-2000:]
        runs.append(json.loads(proc.stdout))
    assert runs[0]["answers"] == runs[1]["answers"]  # bit for bit: no sampling anywhere
    assert runs[0]["model"]["adapter"].endswith("adapter") and runs[0]["model"]["scorer"] == "letter"
    for got, want in zip(runs[0]["answers"], _recorded(tiny_run)):
        probs = [got["probabilities"][k] for k in sorted(got["probabilities"])]
        assert probs == pytest.approx(want["probabilities"], abs=2e-5)
        assert got["answer"] == want["predicted"]


def test_ask_flags_and_human_output(tiny_run, questions):
    q = questions[0]
    args = ["ask", "--run", str(tiny_run), "-q", q["question"]]
    for opt in q["options"]:
        args += ["-o", opt]
    proc = run_cli(*args)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("answer: ")
    assert proc.stdout.count("%") == len(q["options"])
    assert "not medical advice" in proc.stderr


def test_ask_abstains_below_the_threshold(tiny_run, questions, tmp_path):
    qfile = tmp_path / "q.jsonl"
    qfile.write_text("".join(json.dumps(q) + "\n" for q in questions[:3]))
    proc = run_cli("ask", "--run", str(tiny_run), "--file", str(qfile), "--json", "--abstain-below", "0.999")
    assert proc.returncode == 0, proc.stderr[-2000:]
    for got in json.loads(proc.stdout)["answers"]:
        assert got["confidence"] == pytest.approx(max(got["probabilities"].values()))  # no temperature fitted
        assert got["abstain"] is True and got["abstain_reason"] == \
            f"confidence {got['confidence']:.1%} is below the threshold 99.9%"
    from medtune.serve.question import Question, format_answer

    text = format_answer(Question("Which?", ["x", "y"]), {"answer": "B", "answer_text": "y", "abstain": True,
                                                          "probabilities": {"A": 0.45, "B": 0.55},
                                                          "abstain_reason": got["abstain_reason"]})
    assert text.startswith(f"abstain: {got['abstain_reason']}; the model's pick would be B. y\n")


@pytest.mark.parametrize("args, message", [
    (["-q", "Which?", "-o", "only one"], "medtune: error: question.options: 1 options; give 2 to 10"),
    (["-q", "  ", "-o", "a", "-o", "b"], "medtune: error: question.question: must be a non-empty string"),
    (["-q", "Which?"] + sum([["-o", f"o{i}"] for i in range(11)], []),
     "medtune: error: question.options: 11 options; give 2 to 10"),
    ([], "medtune: error: --question: give a question (--question TEXT --option A --option B ...) or --file F"),
])
def test_ask_rejects_bad_questions_in_one_line(tiny_run, args, message):
    proc = run_cli("ask", "--run", str(tiny_run), *args)
    assert proc.returncode == 2
    assert proc.stderr.strip() == message


def test_ask_file_errors_name_file_line_and_field(tiny_run, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "ok?", "options": ["a", "b"]}\n{"question": "ok?", "options": ["a", ""]}\n')
    proc = run_cli("ask", "--run", str(tiny_run), "--file", str(bad))
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"{bad}:2: questions[1].options[1]: must be a non-empty string"


def test_explanation_is_greedy_and_bounded(answerer, questions):
    from medtune.serve.question import Question

    q = Question(questions[0]["question"], questions[0]["options"])
    a = answerer.answer([q], explain=True, max_new_tokens=8)[0]
    b = answerer.answer([q], explain=True, max_new_tokens=8)[0]
    longer = answerer.answer([q], explain=True, max_new_tokens=24)[0]
    assert a["explanation"] == b["explanation"] and a["explanation"]
    # greedy: the 8-token explanation is the start of the 24-token one, which is longer (bounded length)
    assert longer["explanation"].startswith(a["explanation"]) and len(longer["explanation"]) > len(a["explanation"])


# --- HTTP API -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def client(answerer):
    from fastapi.testclient import TestClient

    from medtune.serve.api import create_app

    with TestClient(create_app(answerer, max_batch=16)) as c:
        yield c


def test_api_answers_one_and_many_like_ask(client, answerer, questions):
    from medtune.serve.question import Question

    assert client.get("/healthz").json()["status"] == "ok"
    info = client.get("/v1/model").json()
    assert info["scorer"] == "letter" and info["adapter"].endswith("adapter") and "not medical advice" in info["notice"]
    direct = answerer.answer([Question(q["question"], q["options"], id=q["id"]) for q in questions])
    one = client.post("/v1/answer", json=questions[0])
    assert one.status_code == 200, one.text
    assert one.json()["answers"][0]["probabilities"] == pytest.approx(direct[0]["probabilities"], abs=1e-6)
    many = client.post("/v1/answer", json={"questions": questions})
    assert many.status_code == 200
    got = many.json()["answers"]
    assert [a["id"] for a in got] == [q["id"] for q in questions]
    for g, d in zip(got, direct):
        assert g["answer"] == d["answer"] and g["probabilities"] == pytest.approx(d["probabilities"], abs=1e-6)


def test_api_says_abstain_below_the_threshold(client, answerer, questions):
    body = {"question": questions[0]["question"], "options": questions[0]["options"]}
    plain = client.post("/v1/answer", json=body).json()["answers"][0]
    assert plain["abstain"] is False and plain["abstain_reason"] is None and 0 < plain["confidence"] <= 1
    answerer.source.abstain_below = 0.999
    try:
        got = client.post("/v1/answer", json=body).json()["answers"][0]
    finally:
        answerer.source.abstain_below = None
    assert got["abstain"] is True and got["answer"] == plain["answer"]
    assert got["abstain_reason"] == f"confidence {plain['confidence']:.1%} is below the threshold 99.9%"


@pytest.mark.parametrize("body, error", [
    ({"question": "Which?", "options": ["a"]}, "options: List should have at least 2 items after validation, not 1"),
    ({"question": "Which?", "options": [f"o{i}" for i in range(11)]},
     "options: List should have at most 10 items after validation, not 11"),
    ({"question": "   ", "options": ["a", "b"]}, "question: Value error, question must not be blank"),
    ({"question": "x" * 4001, "options": ["a", "b"]}, "question: String should have at most 4000 characters"),
    ({"question": "Which?", "options": ["a", "b"], "temperature": 0.7}, "temperature: Extra inputs are not permitted"),
    ({"questions": [{"question": "q?", "options": ["a", "b"]}] * 65},
     "questions: List should have at most 64 items after validation, not 65"),
])
def test_api_rejects_out_of_bounds_input_with_422(client, body, error):
    r = client.post("/v1/answer", json=body)
    assert r.status_code == 422
    assert error in r.json()["error"]


def test_api_times_out_with_504(answerer, questions):
    from fastapi.testclient import TestClient

    from medtune.serve.api import create_app

    class Slow:
        def __getattr__(self, name):
            return getattr(answerer, name)

        def answer(self, qs):
            time.sleep(0.5)
            return answerer.answer(qs)

    with TestClient(create_app(Slow(), timeout_s=0.05)) as c:  # type: ignore[arg-type]
        r = c.post("/v1/answer", json=questions[0])
    assert r.status_code == 504
    assert r.json()["error"] == "no answer within 0.05 s; retry, or send fewer questions"


def test_concurrent_requests_share_forward_passes_without_errors(answerer, questions):
    """A bounded load test on loopback: 24 clients x 3 requests against a real uvicorn server."""
    import httpx
    import uvicorn

    from medtune.serve.api import create_app

    app = create_app(answerer, max_batch=32, max_wait_s=0.01)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(100):
            if server.started:
                break
            time.sleep(0.05)

        async def client_task(c, k):
            out = []
            for j in range(3):
                q = questions[(k + j) % len(questions)]
                r = await c.post(f"http://127.0.0.1:{port}/v1/answer", json=q, timeout=60)
                out.append((r.status_code, q["id"], r.json()))
            return out

        async def main():
            async with httpx.AsyncClient() as c:
                return await asyncio.gather(*(client_task(c, k) for k in range(24)))

        results = [x for group in asyncio.run(main()) for x in group]
        health = httpx.get(f"http://127.0.0.1:{port}/healthz").json()
    finally:
        server.should_exit = True
        thread.join(10)
    assert len(results) == 72 and all(code == 200 for code, _, _ in results)
    want = {p["id"]: p["predicted"] for p in _recorded_answers(answerer, questions)}
    assert all(body["answers"][0]["answer"] == want[qid] for _, qid, body in results)
    assert health["requests"] == 72
    assert health["forward_batches"] < 72 and health["largest_batch"] > 1  # requests were batched together


def _recorded_answers(answerer, questions):
    from medtune.serve.question import Question

    res = answerer.answer([Question(q["question"], q["options"]) for q in questions])
    return [{"id": q["id"], "predicted": r["answer"]} for q, r in zip(questions, res)]


def test_api_schema_fuzz_never_answers_500(answerer):
    """schemathesis generates valid and invalid bodies from the OpenAPI schema: never a 5xx."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis.checks import not_a_server_error

    from medtune.serve.api import create_app

    app = create_app(answerer)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    statuses = []
    for op in schema.get_all_operations():
        operation = op.ok()
        modes = list(schemathesis.GenerationMode) if operation.method.upper() == "POST" else \
            [schemathesis.GenerationMode.POSITIVE]
        for mode in modes:  # schema-valid bodies, then schema-violating ones

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)
            def check(case):
                statuses.append(case.call_and_validate(checks=[not_a_server_error]).status_code)

            check()
    assert 200 in statuses and 422 in statuses  # both answers and rejections were exercised


# --- the generative scorer in ask, the API and the app ------------------------------------------

@pytest.fixture(scope="module")
def generator(tiny_run):
    from medtune.serve.answer import Answerer, source_from_run

    return Answerer(source_from_run(str(tiny_run), scorer="generate"), device="cpu")


def test_generative_answers_are_read_from_the_reply_and_repeatable(generator, questions):
    from medtune.eval.extract import extract_answer
    from medtune.eval.generate import generate_answers
    from medtune.serve.question import Question

    qs = [Question(q["question"], q["options"], id=q["id"]) for q in questions[:4]]
    got = generator.answer(qs, max_new_tokens=6)
    assert generator.answer(qs, max_new_tokens=6) == got  # greedy: the same every time
    direct = generate_answers(generator.model, generator.tokenizer, [q.to_item(i) for i, q in enumerate(qs)],
                              max_new_tokens=6)
    for q, r, d in zip(qs, got, direct):
        assert set(r) == {"answer", "answer_text", "index", "probabilities", "scorer", "reply", "reasoning",
                          "generation", "extraction", "new_tokens", "truncated"}
        assert r["scorer"] == "generate" and r["probabilities"] is None and r["generation"] == d.text
        read = extract_answer(r["generation"], q.options)
        assert (r["index"], r["extraction"]) == (read.index, read.how)
        assert r["answer"] == (None if read.index is None else "ABCDE"[read.index])
        assert r["answer_text"] == (None if read.index is None else q.options[read.index])
        assert 1 <= r["new_tokens"] <= 6 and r["truncated"] == (r["new_tokens"] == 6)
    info = generator.info()
    assert info["scorer"] == "generate" and info["thinking"] is False


def test_a_run_evaluated_generatively_answers_the_same_way(tiny_run, tmp_path):
    """ask/serve --run take the scorer and thinking mode of the run's final evaluation."""
    import shutil

    from medtune.serve.answer import source_from_run

    run = tmp_path / "run"
    (run / "final").mkdir(parents=True)
    for name in ("metrics.json", "recipe.yaml"):
        shutil.copy(tiny_run / name, run / name)
    final = json.loads((tiny_run / "final" / "metrics.json").read_text())
    final["manifest"]["scorers"] = ["generate"]
    final["results"] = {"generate": {"accuracy": 0.5, "unparseable_rate": 0.1, "thinking": True}}
    (run / "final" / "metrics.json").write_text(json.dumps(final))
    source = source_from_run(str(run))
    assert (source.scorer, source.thinking) == ("generate", True) and source.adapter.endswith("adapter")
    assert source_from_run(str(run), thinking=False).thinking is False
    assert source_from_run(str(run), scorer="letter").scorer == "letter"
    assert source_from_run(str(tiny_run)).thinking is False


GENERATED = {"answer": "B", "answer_text": "Axillary nerve", "index": 1, "probabilities": None, "scorer": "generate",
             "reply": "The deltoid is supplied by the axillary nerve.\nAnswer: B",
             "reasoning": "Deltoid <abducts> the arm; C5-C6; posterior cord.", "generation": "...",
             "extraction": "answer-line", "new_tokens": 41, "truncated": False}


def test_format_generated_answer_for_the_terminal():
    from medtune.serve.question import Question, format_answer

    q = Question("Which nerve supplies the deltoid?", ["Radial nerve", "Axillary nerve"])
    assert format_answer(q, GENERATED, reasoning_chars=20) == (
        "answer: B. Axillary nerve (read by rule answer-line)\n"
        "reasoning (49 characters; all of it with --json): Deltoid <abducts> th…\n"
        "reply: The deltoid is supplied by the axillary nerve.\n"
        "       Answer: B")
    none = {**GENERATED, "answer": None, "answer_text": None, "index": None, "reasoning": "", "reply": "A or B",
            "extraction": "hedge"}
    assert format_answer(q, none) == ("answer: none (could not read an answer: no single option is stated; "
                                      "rule hedge)\nreply: A or B")
    cut = {**none, "reply": "", "extraction": "none", "truncated": True}
    assert format_answer(q, cut) == ("answer: none (could not read an answer: the reply ran out of tokens; rule none)"
                                     "\nreply: (empty)")


def test_app_renders_the_reasoning_collapsed_and_escaped():
    from medtune.serve.app import render_result

    out = render_result(["Radial nerve", "Axillary nerve"], GENERATED)
    assert out.startswith('<div id="medtune-answer" data-answer="B" data-scorer="generate">')
    assert "Answer: <b>B</b>. Axillary nerve" in out and "rule answer-line" in out
    assert ('<details class="mt-reasoning"><summary>Reasoning (49 characters, 41 tokens generated)</summary>'
            "<pre>Deltoid &lt;abducts&gt; the arm; C5-C6; posterior cord.</pre></details>") in out
    assert "<details open" not in out and 'class="mt-row' not in out  # collapsed; no probability bars
    none = render_result(["Radial nerve", "Axillary nerve"], {**GENERATED, "answer": None, "answer_text": None,
                                                              "index": None, "reasoning": "", "extraction": "none"})
    assert 'data-answer=""' in none and "No answer could be read from the reply" in none and "<details" not in none


def test_api_returns_reasoning_and_null_probabilities_when_generating(generator, questions):
    from fastapi.testclient import TestClient

    from medtune.serve.api import create_app
    from medtune.serve.question import Question

    want = generator.answer([Question(q["question"], q["options"]) for q in questions[:2]])
    with TestClient(create_app(generator, max_batch=4, timeout_s=120)) as c:
        r = c.post("/v1/answer", json={"questions": questions[:2]})
        assert c.get("/v1/model").json()["scorer"] == "generate"
    assert r.status_code == 200, r.text
    for got, w in zip(r.json()["answers"], want):
        assert got["probabilities"] is None and got["scorer"] == "generate"
        assert {k: got[k] for k in ("answer", "index", "reasoning", "reply", "extraction", "new_tokens")} == \
               {k: w[k] for k in ("answer", "index", "reasoning", "reply", "extraction", "new_tokens")}


class _Thinker:
    """Stands in for an Answerer whose model thinks (the tiny random model cannot): fixed generative answers."""

    scorer = "generate"

    def info(self):
        return {"model": "thinker", "adapter": None, "backend": {"kind": "cpu", "name": "CPU", "dtype": "float32"},
                "scorer": "generate", "thinking": True, "template": "chat", "medtune": "test", "notice": "n"}

    def answer(self, questions, explain=False, max_new_tokens=None):
        if questions[0].question.startswith("Unsure"):  # a scored answer below the abstention threshold
            return [{"answer": "A", "answer_text": "Radial nerve", "index": 0, "scorer": "letter",
                     "probabilities": {"A": 0.4, "B": 0.3, "C": 0.2, "D": 0.1}, "confidence": 0.4, "abstain": True,
                     "abstain_reason": "confidence 40.0% is below the threshold 60.0%"}]
        return [dict(GENERATED, reasoning="The deltoid abducts the arm.\nIts nerve: the axillary nerve.")
                for _ in questions]


def test_app_in_a_real_browser_shows_generated_reasoning_collapsed():
    from playwright.sync_api import sync_playwright

    from conftest import CHROMIUM_ARGS, chromium_path
    from medtune.serve.app import CSS, build_app

    exe = chromium_path()
    demo = build_app(_Thinker(), examples=False)  # type: ignore[arg-type]
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, css=CSS, quiet=True)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{port}/", wait_until="load", timeout=90_000)
            page.wait_for_selector("#medtune-go", timeout=90_000)
            assert "generate (thinking on)" in page.locator("#medtune-model").inner_text()
            assert not page.locator("#medtune-explain").is_visible()  # the reply explains itself
            page.locator("#medtune-question textarea").fill("Which nerve supplies the deltoid?")
            for letter, text in zip("ABCD", ["Radial nerve", "Axillary nerve", "Ulnar nerve", "Median nerve"]):
                page.locator(f"#medtune-option-{letter} textarea").fill(text)
            page.locator("#medtune-go").click()
            page.wait_for_selector("#medtune-answer", timeout=60_000)
            assert page.locator("#medtune-answer").get_attribute("data-answer") == "B"
            reasoning = page.locator("#medtune-answer details.mt-reasoning pre")
            assert not reasoning.is_visible()  # collapsed
            page.locator("#medtune-answer details.mt-reasoning summary").click()
            reasoning.wait_for(state="visible", timeout=10_000)
            assert reasoning.inner_text() == "The deltoid abducts the arm.\nIts nerve: the axillary nerve."
            page.locator("#medtune-question textarea").fill("Unsure: which nerve supplies the deltoid?")
            page.locator("#medtune-go").click()
            page.wait_for_selector("#medtune-abstain", timeout=60_000)
            assert page.locator("#medtune-answer").get_attribute("data-abstain") == "true"
            assert page.locator("#medtune-abstain").inner_text() == \
                "Abstain: confidence 40.0% is below the threshold 60.0%"
            browser.close()
    finally:
        demo.close()


def test_an_encoder_cannot_answer_generatively():
    from medtune.errors import MedtuneError
    from medtune.serve.answer import Answerer, Source

    with pytest.raises(MedtuneError) as err:
        Answerer(Source(model="minilm-l6", scorer="generate"), device="cpu")
    assert str(err.value) == ("--scorer: minilm-l6 is an encoder with a multiple-choice head: it scores options "
                              "but cannot write an answer; drop --scorer generate")
