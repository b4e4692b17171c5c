"""A served model has a lock and limits: the bearer token, the body-size limit enforced while reading,
400/413/422/503 as JSON, each question's tokens checked alone against the model's limit, no local
paths in any response, a load past the queue bound where every request is answered (tiny random
Llama run, loopback only)."""

from __future__ import annotations

import asyncio
import json
import resource
import threading
import time

import pytest

from conftest import free_port, run_cli

TOKEN = "s3cret-token"


class Wrapped:
    """The real answerer, slowed down or made to fail on a marked question."""

    def __init__(self, inner, delay=0.0):
        self.inner, self.delay = inner, delay

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def answer(self, qs):
        time.sleep(self.delay)
        if any("boom" in q.question for q in qs):
            raise RuntimeError("/home/someone/secret/model.bin: CUDA out of memory")
        return self.inner.answer(qs)


def _client(app):
    from fastapi.testclient import TestClient

    return TestClient(app, raise_server_exceptions=False)


def test_the_token_is_required_when_set(answerer, questions):
    from medtune.serve.api import create_app

    with _client(create_app(answerer, token=TOKEN)) as c:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN},
                        {"Authorization": f"Basic {TOKEN}"}):
            r = c.post("/v1/answer", json=questions[0], headers=headers)
            assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
            assert r.json() == {"error": "a bearer token is required: send Authorization: Bearer TOKEN"}
        assert c.get("/v1/model").status_code == 401
        ok = c.post("/v1/answer", json=questions[0], headers={"Authorization": f"Bearer {TOKEN}"})
        assert ok.status_code == 200 and ok.json()["answers"][0]["answer"] in "ABCDE"
        assert c.get("/healthz").json()["status"] == "ok"  # a health check needs no token


def test_a_token_compare_is_constant_time():
    from medtune.serve.limits import bearer_ok

    assert bearer_ok(f"Bearer {TOKEN}".encode(), TOKEN) and bearer_ok(f"bearer  {TOKEN} ".encode(), TOKEN)
    assert not bearer_ok(None, TOKEN) and not bearer_ok(b"Bearer", TOKEN) and not bearer_ok(b"Bearer s3cret", TOKEN)
    import inspect

    assert "hmac.compare_digest" in inspect.getsource(bearer_ok)


def _run_guard(chunks, limit, content_length=None):
    """Drive the Guard middleware by hand: how many body chunks it read, and what it answered."""
    from medtune.serve.limits import Guard

    pulled, sent, reached = [], [], []

    async def app(scope, receive, send):
        reached.append((await receive())["body"])

    async def receive():
        i = len(pulled)
        pulled.append(i)
        return {"type": "http.request", "body": chunks[i], "more_body": i < len(chunks) - 1}

    async def send(message):
        sent.append(message)

    headers = [(b"content-length", str(content_length).encode())] if content_length is not None else []
    scope = {"type": "http", "path": "/v1/answer", "method": "POST", "headers": headers}
    asyncio.run(Guard(app, max_body=limit)(scope, receive, send))
    status = sent[0]["status"] if sent else None
    body = json.loads(sent[1]["body"]) if sent else None
    return len(pulled), status, body, reached


def test_the_body_limit_is_enforced_while_reading():
    chunks = [b"x" * 60] * 100  # 6,000 bytes, streamed without a Content-Length
    n, status, body, reached = _run_guard(chunks, limit=100)
    assert (n, status, reached) == (2, 413, [])  # stopped at the chunk that passed the limit
    assert body == {"error": "the body is larger than 100 bytes; send fewer or shorter questions"}
    n, status, _, reached = _run_guard(chunks, limit=100, content_length=6000)
    assert (n, status, reached) == (0, 413, [])  # a declared length over the limit: nothing read
    n, status, _, reached = _run_guard([b"ab", b"cd"], limit=100)
    assert (n, status, reached) == (2, None, [b"abcd"])  # under the limit: the app gets the whole body


def test_every_failure_is_json(answerer, questions):
    from medtune.serve.api import create_app

    with _client(create_app(Wrapped(answerer), max_body=10_000)) as c:
        r = c.post("/v1/answer", content=b'{"question": "Which?", "options": ["a", "b"',
                   headers={"Content-Type": "application/json"})
        assert r.status_code == 400 and r.json()["error"].startswith("the body is not valid JSON: ")
        r = c.post("/v1/answer", json={"question": "x" * 3000, "options": ["a", "b"], "context": "y" * 12000})
        assert r.status_code == 413 and r.json() == {"error": "the body is larger than 10000 bytes; send fewer or "
                                                              "shorter questions"}
        r = c.get("/v1/nothing")
        assert r.status_code == 404 and r.json() == {"error": "Not Found"}
        r = c.post("/v1/answer", json={**questions[0], "question": "boom: " + questions[0]["question"]})
        assert r.status_code == 500
        assert r.json() == {"error": "the server failed to answer this request; its log has the details"}


def test_a_question_over_the_models_token_limit_is_refused_alone(answerer, questions):
    from medtune.errors import MedtuneError
    from medtune.serve.question import Question
    from medtune.serve.api import create_app
    from medtune.serve.limits import tokens_needed

    long_text = " ".join(f"drug{i} treats condition {i % 7}" for i in range(400))[:3900]
    long = {"question": long_text, "options": ["a", "b", "c"]}
    assert tokens_needed(answerer, Question(long_text, ["a", "b", "c"])) > 512
    with _client(create_app(answerer)) as c:
        r = c.post("/v1/answer", json={"questions": [questions[0], long]})
        assert r.status_code == 422
        assert r.json()["error"].startswith("questions[1]: takes ")
        assert r.json()["error"].endswith(" tokens with its prompt and options; this model reads at most 512 "
                                          "(max_position_embeddings): shorten it")
        assert c.post("/v1/answer", json=questions[0]).status_code == 200  # the others still answer
        assert c.get("/healthz").json()["questions"] == 1  # the refused request never reached the queue
    with pytest.raises(MedtuneError, match=r"^question: takes \d+ tokens"):
        answerer.answer([Question(long_text, ["a", "b", "c"])])  # ask and the app check the same way


def test_a_failing_request_does_not_fail_the_requests_batched_with_it(answerer, questions):
    import httpx

    from medtune.serve.api import create_app

    app = create_app(Wrapped(answerer, delay=0.05), max_wait_s=0.2)

    async def main():
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            async with app.router.lifespan_context(app):
                bad = {**questions[1], "question": "boom " + questions[1]["question"]}
                return await asyncio.gather(c.post("/v1/answer", json=questions[0]), c.post("/v1/answer", json=bad),
                                            c.post("/v1/answer", json=questions[2]))

    good, bad, good2 = asyncio.run(main())
    assert (good.status_code, bad.status_code, good2.status_code) == (200, 500, 200)
    assert app.state.batcher.stats["largest_batch"] == 1  # the shared pass failed; each went alone


def test_no_response_names_a_local_path(answerer, questions, tiny_run, tiny_model_dir):
    from medtune.serve.api import create_app

    with _client(create_app(answerer)) as c:
        info = c.get("/v1/model")
        answer = c.post("/v1/answer", json=questions[0])
    assert info.json()["adapter"] == "adapter" and info.json()["run"] == "."
    assert info.json()["model"] == f"<local>/{tiny_model_dir.name}"
    assert answer.json()["adapter"] == "adapter" and answer.json()["model"] == f"<local>/{tiny_model_dir.name}"
    for text in (info.text, answer.text):
        assert str(tiny_run) not in text and str(tiny_model_dir) not in text and "/tmp/" not in text


def test_a_server_other_machines_reach_needs_a_token():
    from medtune.serve.limits import check_exposure

    proc = run_cli("serve", "--api", "--host", "0.0.0.0", "--run", "/nonexistent", env={"MEDTUNE_API_TOKEN": ""})
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("medtune: error: --host: 0.0.0.0 is reachable from other machines and no token "
                                   "is set: pass --token (better: set MEDTUNE_API_TOKEN), or "
                                   "--allow-unauthenticated to serve it open")
    for host, token, allow in (("127.0.0.1", None, False), ("localhost", None, False), ("::1", None, False),
                               ("0.0.0.0", "t", False), ("10.0.0.5", None, True)):
        check_exposure(host, token, allow)


def test_load_past_the_queue_bound_answers_every_request(answerer, questions):
    """120 concurrent clients against a queue of 8 questions on a real uvicorn server (loopback): every
    request gets 200 or 503 (JSON, with Retry-After), none is dropped, the queue never passes its bound,
    memory stays bounded, and the server answers afterwards."""
    import httpx
    import uvicorn

    from medtune.serve.api import create_app

    app = create_app(Wrapped(answerer, delay=0.02), max_batch=4, max_queue=8, max_wait_s=0.01, timeout_s=60)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        for _ in range(200):
            if server.started:
                break
            time.sleep(0.05)

        async def one(c, k):
            r = await c.post(f"http://127.0.0.1:{port}/v1/answer", json=questions[k % len(questions)], timeout=60)
            return r.status_code, r.headers.get("retry-after"), r.json()

        async def main():
            limits = httpx.Limits(max_connections=120)
            async with httpx.AsyncClient(limits=limits) as c:
                return await asyncio.gather(*(one(c, k) for k in range(120)))

        t0 = time.perf_counter()
        results = asyncio.run(main())
        seconds = time.perf_counter() - t0
        after = httpx.post(f"http://127.0.0.1:{port}/v1/answer", json=questions[0], timeout=60)
        health = httpx.get(f"http://127.0.0.1:{port}/healthz").json()
    finally:
        server.should_exit = True
        thread.join(10)
    codes = [code for code, _, _ in results]
    assert len(results) == 120 and set(codes) <= {200, 503}, codes
    assert codes.count(200) >= 8 and codes.count(503) >= 1, codes
    for code, retry, body in results:
        if code == 503:
            assert int(retry) >= 1 and body["error"].startswith("busy: ") and "(at most 8)" in body["error"]
        else:
            assert body["answers"][0]["answer"] in "ABCDE"
    assert after.status_code == 200 and thread.is_alive() is False
    assert health["largest_queue"] <= 8 and health["refused_busy"] == codes.count(503)
    assert health["requests"] == 121  # every request reached the app; none was dropped on the way
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0 < 300 * 1024  # KiB: bounded memory
    assert seconds < 60


class _Stub:
    """An answerer for the app's HTTP checks (no model): its info names a local path."""

    scorer = "letter"

    def info(self):
        return {"model": "/tmp/secret-place/tiny-llama", "adapter": "/tmp/secret-place/run/adapter",
                "run": "/tmp/secret-place/run", "backend": {"kind": "cpu", "name": "CPU", "dtype": "float32"},
                "scorer": "letter", "thinking": None, "template": "chat", "medtune": "test", "notice": "n"}


def test_the_app_has_a_login_a_queue_bound_and_no_error_internals():
    import httpx

    from medtune.serve.app import launch

    port = free_port()
    demo = launch(_Stub(), "127.0.0.1", port, token=TOKEN, max_queue=5, prevent_thread_lock=True, quiet=True)
    url = f"http://127.0.0.1:{port}"
    try:
        assert (demo._queue.max_size, demo._queue.default_concurrency_limit, demo.show_error) == (5, 1, False)
        assert httpx.get(f"{url}/config").status_code == 401  # nothing of the app before the login
        assert httpx.post(f"{url}/login", data={"username": "a", "password": "wrong"}).status_code == 400
        with httpx.Client() as c:
            assert c.post(f"{url}/login", data={"username": "a", "password": TOKEN}).status_code == 200
            config = c.get(f"{url}/config")
    finally:
        demo.close()
    assert config.status_code == 200 and "<local>/tiny-llama" in config.text and "secret-place" not in config.text
