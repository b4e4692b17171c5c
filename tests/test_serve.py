"""`medtune ask` and the HTTP API, on a tiny random Llama run (machinery, not accuracy)."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest

from conftest import free_port, run_cli, sample_questions


@pytest.fixture(scope="module")
def questions(tiny_run, sample_jsonl):
    return sample_questions(tiny_run, sample_jsonl)


@pytest.fixture(scope="module")
def answerer(tiny_run):
    from medtune.serve.answer import Answerer, source_from_run

    return Answerer(source_from_run(str(tiny_run)), device="cpu")


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
    from medtune.serve.answer import Question

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
    from medtune.serve.answer import Question

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
        ref, source = answerer.ref, answerer.source

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
    from medtune.serve.answer import Question

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
