"""`medtune serve --api`: a FastAPI app over one Answerer.

Requests that arrive while the model is busy are queued and answered together in the next forward
pass (dynamic batching, up to `max_batch` questions: `medtune.serve.batcher`), so many concurrent
clients cost a few large passes rather than many small ones. The queue is bounded (`max_queue`
questions): past it a request gets 503 with Retry-After. Every request has a timeout (504 when it
passes). Before anything is queued, each question is checked alone, its fields and its tokens against
the model's limit (422 naming the field); a bearer token (when set) and the body-size limit (413) come
first of all (medtune.serve.limits). Every failure is a JSON {"error": ...}; no response names a local path.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import asynccontextmanager
from typing import Annotated, Any, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator

from medtune.data.schema import MAX_OPTIONS, MIN_OPTIONS
from medtune.errors import MedtuneError
from medtune.serve.answer import NOTICE, Answerer, public_info
from medtune.serve.batcher import Batcher, Busy
from medtune.serve.limits import MAX_BODY_BYTES, MAX_QUEUE_QUESTIONS, Guard, check_questions
from medtune.serve.question import MAX_CONTEXT_CHARS, MAX_OPTION_CHARS, MAX_QUESTION_CHARS, Question

MAX_BATCH_QUESTIONS = 64
ANSWER_FIELDS = ("answer", "answer_text", "index", "probabilities", "scorer", "reasoning", "reply", "extraction",
                 "new_tokens", "confidence", "abstain", "abstain_reason")


def _clean(value: str | None, what: str) -> str | None:
    if value is None:
        return None
    if not value.strip():
        raise ValueError(f"{what} must not be blank")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{what} is not valid Unicode text (lone surrogate)") from None
    if "\x00" in value:
        raise ValueError(f"{what} must not contain NUL characters")
    return value


class QuestionIn(BaseModel):
    """One question with 2 to 10 options."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "question": "Which nerve supplies the deltoid muscle?",
        "options": ["Radial nerve", "Axillary nerve", "Ulnar nerve", "Median nerve"]}]})

    question: str = Field(min_length=1, max_length=MAX_QUESTION_CHARS)
    options: list[Annotated[str, Field(min_length=1, max_length=MAX_OPTION_CHARS)]] = Field(
        min_length=MIN_OPTIONS, max_length=MAX_OPTIONS)
    context: str | None = Field(default=None, max_length=MAX_CONTEXT_CHARS)
    id: str | None = Field(default=None, max_length=200)

    @field_validator("question", "context", "id")
    @classmethod
    def _text(cls, v: str | None, info: Any) -> str | None:
        return _clean(v, info.field_name)

    @field_validator("options")
    @classmethod
    def _options(cls, v: list[str]) -> list[str]:
        return [_clean(o, f"option {chr(65 + i)}") for i, o in enumerate(v)]  # type: ignore[misc]


class BatchIn(BaseModel):
    """Many questions in one request."""

    model_config = ConfigDict(extra="forbid")
    questions: list[QuestionIn] = Field(min_length=1, max_length=MAX_BATCH_QUESTIONS)


class AnswerOut(BaseModel):
    id: str | None = None
    answer: str | None = Field(description="the letter of the most probable option; generating, the letter read "
                                           "from the reply (null when none could be read: never a guess)")
    answer_text: str | None
    index: int | None
    probabilities: dict[str, float] | None = Field(
        description="softmax over the options' scores, by letter (null for the generative scorer)")
    scorer: str
    reasoning: str | None = Field(default=None, description="generative scorer: the model's reasoning "
                                                           "(its <think> block; empty when it has none)")
    reply: str | None = Field(default=None, description="generative scorer: the reply after the reasoning")
    extraction: str | None = Field(default=None, description="generative scorer: the rule that read the answer "
                                                            "(answer-line, answer-is, boxed, ... or none, hedge)")
    new_tokens: int | None = Field(default=None, description="generative scorer: tokens generated")
    confidence: float | None = Field(default=None, description="the chosen option's probability at the run's "
                                                               "fitted temperature (null for the generative scorer)")
    abstain: bool | None = Field(default=None, description="true: confidence below the abstention threshold, "
                                                          "the answer should not be relied on")
    abstain_reason: str | None = Field(default=None, description="why the answer is withheld")


class AnswersOut(BaseModel):
    answers: list[AnswerOut]
    model: str
    adapter: str | None
    seconds: float


class ErrorOut(BaseModel):
    error: str


def create_app(answerer: Answerer, *, max_batch: int = 32, timeout_s: float = 30.0, max_wait_s: float = 0.005,
               max_queue: int = MAX_QUEUE_QUESTIONS, token: str | None = None,
               max_body: int = MAX_BODY_BYTES) -> Any:
    """The FastAPI app: POST /v1/answer, GET /v1/model, GET /healthz (OpenAPI at /openapi.json); with
    `token`, /v1/ requires `Authorization: Bearer TOKEN`."""
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse

    batcher = Batcher(answerer, max_batch=max_batch, max_wait_s=max_wait_s, max_queue=max_queue)

    @asynccontextmanager
    async def lifespan(app: Any):  # noqa: ANN202
        batcher.start()
        yield
        await batcher.stop()

    from medtune import __version__

    app = FastAPI(title="medtune", version=__version__, lifespan=lifespan,
                  description=f"Clinical multiple-choice answering. {NOTICE}")
    app.state.batcher = batcher
    app.add_middleware(Guard, token=token, max_body=max_body)

    _add_error_handlers(app)

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok", **batcher.stats}

    @app.get("/v1/model")
    async def model_info() -> dict:
        return public_info(answerer.info())

    errors = {code: {"model": ErrorOut} for code in (400, 401, 413, 422, 503, 504)}

    @app.post("/v1/answer", response_model=AnswersOut, responses=errors)  # type: ignore[arg-type]
    async def answer(body: Union[QuestionIn, BatchIn]) -> Any:
        rows = body.questions if isinstance(body, BatchIn) else [body]
        questions = [Question(r.question, list(r.options), r.context, r.id) for r in rows]
        check_questions(answerer, questions)  # each alone, before it can share a pass with others
        t0 = time.perf_counter()
        batcher.stats["requests"] += 1
        batcher.stats["questions"] += len(questions)
        try:
            results = await asyncio.wait_for(batcher.submit(questions), timeout_s)
        except (asyncio.TimeoutError, TimeoutError):
            return JSONResponse(status_code=504, content={"error": f"no answer within {timeout_s:g} s; "
                                                                   "retry, or send fewer questions"})
        answers = [AnswerOut(id=q.id, **{k: r.get(k) for k in ANSWER_FIELDS}) for q, r in zip(questions, results)]
        shown = public_info(answerer.info())
        return AnswersOut(answers=answers, model=shown["model"], adapter=shown["adapter"],
                          seconds=time.perf_counter() - t0)

    return app


def _add_error_handlers(app: Any) -> None:
    """Every failure as JSON {"error": ...}: malformed JSON 400, invalid fields 422, a full queue 503 with
    Retry-After, HTTP errors with their status, anything else 500 without internals."""
    from fastapi import Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        bad_json = next((e for e in exc.errors() if e.get("type") == "json_invalid"), None)
        if bad_json is not None:
            why = (bad_json.get("ctx") or {}).get("error") or bad_json.get("msg")
            return JSONResponse(status_code=400, content={"error": f"the body is not valid JSON: {why}"})
        return JSONResponse(status_code=422, content={"error": _first_problem(exc),
                                                      "detail": _jsonable(exc.errors())})

    @app.exception_handler(MedtuneError)
    async def _medtune(request: Request, exc: MedtuneError) -> JSONResponse:
        return JSONResponse(status_code=422, content={"error": str(exc)})

    @app.exception_handler(Busy)
    async def _busy(request: Request, exc: Busy) -> JSONResponse:
        return JSONResponse(status_code=503, content={"error": str(exc)},
                            headers={"Retry-After": str(exc.retry_after)})

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse(status_code=exc.status_code, content={"error": str(exc.detail)}, headers=exc.headers)

    @app.exception_handler(Exception)
    async def _failed(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(status_code=500, content={"error": "the server failed to answer this request; its "
                                                               "log has the details"})


def _first_problem(exc: Any) -> str:
    """One line for a 422: the first problem in the form the client meant (one question, or a batch)."""
    errors = list(exc.errors())
    meant = "BatchIn" if isinstance(exc.body, dict) and "questions" in exc.body else "QuestionIn"
    errors = [e for e in errors if meant in e.get("loc", ())] or errors
    first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
    loc = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "QuestionIn", "BatchIn"))
    return f"{loc}: {first.get('msg')}" if loc else str(first.get("msg"))


def _jsonable(errors: list) -> list:
    out = []
    for e in errors:
        out.append({"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg")), "type": e.get("type")})
    return out


def serve_api(answerer: Answerer, host: str, port: int, **kwargs: Any) -> None:
    """Serve create_app(answerer, **kwargs) with uvicorn until interrupted."""
    import uvicorn

    uvicorn.run(create_app(answerer, **kwargs), host=host, port=port, log_level="info")
