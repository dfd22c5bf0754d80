"""``xtremedistil serve``: a saved student behind an HTTP API (FastAPI on uvicorn) and a web demo.

- ``POST /v1/predict`` ``{"texts": [...]}`` -> each text's entities with character offsets (Unicode code
  points, as Python counts them), micro-batched across concurrent requests (``batcher.py``);
- ``GET /health`` (model, backend, labels, limits), ``GET /metrics`` (Prometheus text format),
  ``GET /docs`` (OpenAPI), ``GET /`` (the demo page).

Limits answer with JSON naming the limit: 413 for too many texts, too long a text or too large a body;
422 for malformed JSON or wrong types. An unexpected error is logged and answered with a JSON 500, never a
traceback. uvicorn drains in-flight requests on SIGTERM before the batcher stops.
"""

from __future__ import annotations

import gc
import logging
import signal
import time
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from pydantic import BaseModel, ConfigDict, Field, StrictStr

from xtremedistil.serve.batcher import MicroBatcher, Unbatched

log = logging.getLogger("xtremedistil.serve")

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


@dataclass(frozen=True)
class ServeSettings:
    """Micro-batching and request limits (``xtremedistil serve --help`` explains each)."""

    batching: bool = True
    max_batch_size: int = 64  # texts per forward pass
    max_wait_ms: float = 2.0  # how long a batch waits for more requests once it has one
    max_texts: int = 64  # texts per request
    max_chars: int = 2000  # characters per text
    max_body_bytes: int = 1_000_000
    model_batch_size: int = 64  # windows per model call inside a forward pass


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    texts: list[StrictStr] = Field(min_length=1, description="The texts to tag, one string each.")


class EntityOut(BaseModel):
    type: str
    text: str
    start: int = Field(description="Offset of the first character (Unicode code points).")
    end: int = Field(description="Offset after the last character.")


class TextResult(BaseModel):
    text: str
    entities: list[EntityOut]


class PredictResponse(BaseModel):
    results: list[TextResult]
    model: str
    took_ms: float = Field(description="Time in the server, queueing and batching included.")


class ErrorBody(BaseModel):
    code: str
    message: str
    limit: int | None = None
    details: list[dict[str, Any]] | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody


def error(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    body = {"code": code, "message": message, **{k: v for k, v in extra.items() if v is not None}}
    return JSONResponse({"error": body}, status_code=status)


class Metrics:
    """Prometheus metrics in the app's own registry (several apps in one process do not collide)."""

    def __init__(self) -> None:
        disable_created_metrics()  # no *_created series: they double the page and nobody graphs them
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "xtremedistil_requests", "HTTP requests by path and status.", ["path", "status"], registry=r
        )
        self.errors = Counter(
            "xtremedistil_errors", "Refused or failed requests by code.", ["code"], registry=r
        )
        self.latency = Histogram(
            "xtremedistil_request_seconds",
            "Predict request latency in the server.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.texts = Counter("xtremedistil_texts", "Texts tagged.", registry=r)
        self.batch_texts = Histogram(
            "xtremedistil_batch_texts", "Texts per forward pass.", buckets=BATCH_BUCKETS, registry=r
        )
        self.batch_requests = Histogram(
            "xtremedistil_batch_requests", "Requests per forward pass.", buckets=BATCH_BUCKETS, registry=r
        )
        self.queued = Gauge(
            "xtremedistil_queued_requests", "Requests waiting for a forward pass.", registry=r
        )
        self.in_flight = Gauge(
            "xtremedistil_in_flight_requests", "Predict requests in the server.", registry=r
        )

    def on_batch(self, texts: int, requests: int) -> None:
        self.batch_texts.observe(texts)
        self.batch_requests.observe(requests)


class BodyLimit:
    """ASGI middleware: a body over ``limit`` bytes (by Content-Length, or counted as it streams) gets 413
    before anything parses it. The body is read here and handed on whole (the app reads it whole anyway)."""

    def __init__(self, app: Any, limit: int, metrics: Metrics) -> None:
        self.app, self.limit, self.metrics = app, limit, metrics

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD"):
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await self._refuse(scope, receive, send)
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.limit:
                return await self._refuse(scope, receive, send)
            if not message.get("more_body", False):
                break
        body, sent = b"".join(chunks), False

        async def replay() -> dict:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: dict, receive: Any, send: Any) -> None:
        self.metrics.errors.labels("body_too_large").inc()
        self.metrics.requests.labels(scope.get("path", ""), "413").inc()
        response = error(413, "body_too_large", f"request body over {self.limit} bytes", limit=self.limit)
        await response(scope, receive, send)


def demo_page() -> str:
    return resources.files("xtremedistil.serve").joinpath("demo.html").read_text(encoding="utf-8")


def create_app(predictor: Any, settings: ServeSettings | None = None, name: str | None = None) -> FastAPI:
    """The FastAPI app serving ``predictor`` (a ``StudentPredictor``, or anything with ``.predict(texts,
    batch_size)`` returning entities with ``to_dict()``, ``.meta`` and ``.backend``)."""
    settings = settings or ServeSettings()
    metrics = Metrics()
    name = name or str(predictor.meta.get("name") or "student")
    types = sorted({label[2:] for label in predictor.meta["labels"] if label[:2] in ("B-", "I-")})

    def run(texts: list[str]) -> list[list[dict[str, Any]]]:
        entities = predictor.predict(texts, batch_size=settings.model_batch_size)
        return [[e.to_dict() for e in found] for found in entities]

    batcher: MicroBatcher | Unbatched = (
        MicroBatcher(run, settings.max_batch_size, settings.max_wait_ms / 1000, metrics.on_batch)
        if settings.batching
        else Unbatched(run, metrics.on_batch)
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await batcher.start()
        yield
        await batcher.stop()

    app = FastAPI(
        title="xtremedistil",
        summary=f"Named entities from the distilled student {name}",
        version="1",
        lifespan=lifespan,
        responses={413: {"model": ErrorResponse}, 422: {"model": ErrorResponse}},
    )
    app.state.metrics, app.state.batcher, app.state.settings = metrics, batcher, settings

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        malformed = any(d["type"] == "json_invalid" for d in details)
        code = "malformed_json" if malformed else "invalid_request"
        metrics.errors.labels(code).inc()
        metrics.requests.labels(request.url.path, "422").inc()
        message = "the body is not valid JSON" if malformed else 'expected {"texts": ["a text", ...]}'
        return error(422, code, message, details=details)

    @app.exception_handler(Exception)
    async def failed(request: Request, exc: Exception) -> JSONResponse:
        # one line here: Starlette re-raises after this handler, and uvicorn logs the traceback once
        log.error("request to %s failed: %s: %s", request.url.path, type(exc).__name__, exc)
        metrics.errors.labels("internal").inc()
        metrics.requests.labels(request.url.path, "500").inc()
        return error(500, "internal", f"the server failed on this request ({type(exc).__name__})")

    @app.post("/v1/predict", response_model=PredictResponse, summary="Tag entities in texts")
    async def predict(body: PredictRequest) -> Any:
        start = time.perf_counter()
        refusal = _over_limits(body.texts, settings)
        if refusal is not None:
            code, message, limit = refusal
            metrics.errors.labels(code).inc()
            metrics.requests.labels("/v1/predict", "413").inc()
            return error(413, code, message, limit=limit)
        metrics.in_flight.inc()
        metrics.queued.set(batcher.queued + 1)
        try:
            entities = await batcher.submit(body.texts)
        finally:
            metrics.in_flight.dec()
            metrics.queued.set(batcher.queued)
        took = time.perf_counter() - start
        metrics.latency.observe(took)
        metrics.texts.inc(len(body.texts))
        metrics.requests.labels("/v1/predict", "200").inc()
        results = [{"text": t, "entities": e} for t, e in zip(body.texts, entities, strict=True)]
        # built here and returned as is: FastAPI's validation of a response it did not build costs more than
        # the model's share of a request (``response_model`` still documents the shape)
        return JSONResponse({"results": results, "model": name, "took_ms": round(took * 1000, 3)})

    @app.get("/health", summary="Model, backend, labels and limits")
    async def health() -> dict[str, Any]:
        return {
            "status": "ok",
            "model": name,
            "task": "ner",
            "backend": getattr(predictor, "backend", "torch"),
            "entity_types": types,
            "settings": asdict(settings),
        }

    @app.get("/metrics", summary="Prometheus metrics")
    async def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    page = demo_page()

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def demo() -> str:
        return page

    app.add_middleware(BodyLimit, limit=settings.max_body_bytes, metrics=metrics)
    return app


def _over_limits(texts: list[str], settings: ServeSettings) -> tuple[str, str, int] | None:
    if len(texts) > settings.max_texts:
        return (
            "too_many_texts",
            f"{len(texts)} texts; at most {settings.max_texts} per request",
            settings.max_texts,
        )
    for i, text in enumerate(texts):
        if len(text) > settings.max_chars:
            return (
                "text_too_long",
                f"texts[{i}] has {len(text)} characters; at most {settings.max_chars} per text",
                settings.max_chars,
            )
    return None


def serve(
    model_dir: str | Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    backend: str = "auto",
    settings: ServeSettings | None = None,
    access_log: bool = False,
    drain_seconds: float = 30.0,
) -> None:
    """Load the student and serve it until SIGINT/SIGTERM (in-flight requests are answered first)."""
    import uvicorn

    from xtremedistil.student.saved import open_predictor, student_folder
    from xtremedistil.training import setup_torch

    setup_torch()  # threads from the machine, denormals flushed
    predictor = open_predictor(model_dir, backend)
    if predictor.meta.get("task", "ner") != "ner":
        from xtremedistil.errors import XtremeDistilError

        raise XtremeDistilError(
            "`xtremedistil serve` serves NER students so far; a classification student predicts with "
            "`xtremedistil predict` or `load_student(path).predict(texts)`",
            path=model_dir,
        )
    folder = (student_folder(model_dir) or Path(model_dir)).resolve()
    name = f"{folder.parent.name}/{folder.name}" if folder.name == "student" else folder.name
    app = create_app(predictor, settings, name=name)
    # the model, tokenizer and libraries are long-lived: out of the collector's sight, a full collection
    # under load no longer walks them (measured: the p99 latency of the load test)
    gc.collect()
    gc.freeze()
    log.info(
        "serving %s (%s backend) on http://%s:%d: demo at /, API docs at /docs",
        model_dir,
        predictor.backend,
        host,
        port,
    )
    # uvicorn answers in-flight requests on SIGINT/SIGTERM, then raises the signal again to the handler
    # that was there before it; this one records it, so a drained server exits 0 rather than by the signal
    stopped_by: list[str] = []
    previous = {
        sig: signal.signal(sig, lambda n, f: stopped_by.append(signal.Signals(n).name))
        for sig in STOP_SIGNALS
    }
    try:
        # log_config=None: uvicorn's start/stop lines go through the CLI's logging (--quiet hides them)
        uvicorn.run(
            app,
            host=host,
            port=port,
            access_log=access_log,
            log_config=None,
            timeout_graceful_shutdown=drain_seconds,
        )
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    log.info("stopped%s: in-flight requests were answered", f" by {stopped_by[0]}" if stopped_by else "")
