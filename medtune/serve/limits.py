"""What a served model accepts and who may ask it: a question's tokens against the model's limit (each
question alone, before it joins a batch), the bearer token and the body-size limit of the HTTP API
(checked before a body is read past the limit), and the rule that a server reachable from other
machines has a token unless its owner says otherwise."""

from __future__ import annotations

import hmac
import ipaddress
import json
from typing import Any, Awaitable, Callable, Sequence

from medtune.errors import MedtuneError

MAX_BODY_BYTES = 2 * 1024 * 1024  # 64 questions at their longest fit with room to spare
GENERATE_TOKENS = 256  # default length bound of a generative answer (reasoning included)
MAX_QUEUE_QUESTIONS = 256  # questions waiting for a forward pass, at most
TOKEN_ENV = "MEDTUNE_API_TOKEN"


def token_limit(model: Any) -> int | None:
    """The most tokens the model reads in one sequence (max_position_embeddings), or None when unknown."""
    return getattr(getattr(model, "config", None), "max_position_embeddings", None)


def tokens_needed(answerer: Any, question: Any) -> int:
    """Tokens one question takes in its longest forward sequence: the rendered prompt and its longest
    option (or, generating, the reply's bound)."""
    from medtune.data.prompts import render
    from medtune.eval.scorers import get_scorer, is_generative
    from medtune.eval.scoring import build_request
    tok = answerer.tokenizer
    if answerer.is_encoder:
        first = " ".join(t for t in (question.context, question.question) if t)
        return max(len(tok(first, option)["input_ids"]) for option in question.options)
    item = question.to_item()
    if is_generative(answerer.scorer):
        prompt = render(item, answerer.template, tok).prompt
        return len(tok(prompt, add_special_tokens=False)["input_ids"]) + GENERATE_TOKENS
    p = render(item, answerer.template, tok, cloze=get_scorer(answerer.scorer).cloze)
    return build_request(tok, p.prompt, p.choices).longest


def check_questions(answerer: Any, questions: Sequence[Any]) -> None:
    """A one-line MedtuneError for the first question out of bounds: a field, or more tokens than the
    model reads (each question measured alone, so one long question never fails the others)."""
    limit = token_limit(answerer.model)
    for i, q in enumerate(questions):
        where = f"questions[{i}]" if len(questions) > 1 else "question"
        q.check(where)
        if limit is not None:
            n = tokens_needed(answerer, q)
            if n > limit:
                raise MedtuneError(f"takes {n} tokens with its prompt and options; this model reads at most "
                                   f"{limit} (max_position_embeddings): shorten it", field=where)


def is_loopback(host: str) -> bool:
    """Whether `host` is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_exposure(host: str, token: str | None, allow_unauthenticated: bool) -> None:
    """Refuse to serve without a token on an address other machines can reach, unless asked to."""
    if token or allow_unauthenticated or is_loopback(host):
        return
    raise MedtuneError(f"{host} is reachable from other machines and no token is set: pass --token (better: set "
                       f"{TOKEN_ENV}), or --allow-unauthenticated to serve it open", field="--host")


def bearer_ok(header: bytes | None, token: str) -> bool:
    """Whether an Authorization header carries `Bearer TOKEN` (compared in constant time)."""
    scheme, _, given = (header or b"").decode("latin-1").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


Send = Callable[[dict], Awaitable[None]]


async def send_json(send: Send, status: int, error: str, headers: dict[str, str] | None = None) -> None:
    """A JSON error response written straight to the ASGI channel."""
    body = json.dumps({"error": error}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class Guard:
    """ASGI middleware before the API: the bearer token on /v1/ (when one is set), then the body read in
    chunks and refused with 413 as soon as it passes `max_body` bytes (or declares more)."""

    def __init__(self, app: Any, token: str | None = None, max_body: int = MAX_BODY_BYTES):
        self.app, self.token, self.max_body = app, token, max_body

    async def __call__(self, scope: dict, receive: Any, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        if self.token and scope["path"].startswith("/v1/") and not bearer_ok(headers.get(b"authorization"),
                                                                              self.token):
            return await send_json(send, 401, "a bearer token is required: send Authorization: Bearer TOKEN",
                                   {"www-authenticate": "Bearer"})
        too_large = f"the body is larger than {self.max_body} bytes; send fewer or shorter questions"
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body):
            return await send_json(send, 413 if declared.isdigit() else 400,
                                   too_large if declared.isdigit() else "Content-Length is not a number")
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return None
            size += len(message.get("body", b""))
            if size > self.max_body:
                return await send_json(send, 413, too_large)
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        return await self.app(scope, _replay(b"".join(chunks), receive), send)


def _replay(body: bytes, receive: Any) -> Any:
    """A receive channel that hands the app the body already read, then the client's own messages."""
    done = False

    async def replay() -> dict:
        nonlocal done
        if not done:
            done = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
