"""The ASGI app: Annif's REST API (``/v1``) over a :class:`~.core.ConceptSuggester`, and the cataloguer's page at ``/``.

Shapes follow Annif's OpenAPI document (``annif/openapi/annif.yaml``) so that ``annif-client``, Annif's own ``http``
backend and catalogues that speak Annif work unchanged: one project per served language (``elsst-en``, ...);
``suggest`` takes form-encoded (as Annif) or JSON ``text``, ``limit``, ``threshold``, ``language`` (of the labels);
``suggest-batch`` takes ``{"documents": [{"text", "document_id"}]}`` (at most 32) with the options as query
parameters. Answers add elsst-bench's fields to Annif's, never remove one. Errors are Annif's problem documents
(``application/problem+json``, ``{"type", "title", "status", "detail"}``): 400 for bad input, 404 for an unknown
project, 413 for a body over the limit, 415 for a content type the endpoint does not read; never a traceback.

Nothing here writes: ``learn`` answers 403 as Annif does for a project that does not learn.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
from importlib import resources
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException

from .. import __version__
from ..errors import BenchError
from .core import DEFAULT_LIMIT, DEFAULT_THRESHOLD, MAX_BATCH, MAX_LIMIT, ConceptSuggester
from .thread import encoder_thread, on_encoder_thread

#: The largest request body read (bytes); ``ELSST_SERVE_MAX_BODY`` overrides. A 200-word abstract is about 1.5 KB.
MAX_BODY = 512 * 1024
PROBLEM = "application/problem+json"
TITLES = {400: "Bad Request", 403: "Learning not allowed", 404: "Not Found", 405: "Method Not Allowed",
          413: "Payload Too Large", 415: "Unsupported Media Type", 500: "Internal Server Error"}
log = logging.getLogger("elsst_bench.serve")


class Problem(Exception):
    """An error answer: HTTP ``status`` and a one-line ``detail``."""

    def __init__(self, status: int, detail: str, title: str | None = None):
        super().__init__(detail)
        self.status, self.detail, self.title = status, detail, title or TITLES.get(status, "Error")


def json_response(obj) -> Response:
    """``obj`` as JSON, encoded by orjson without FastAPI's per-field conversion (it is plain JSON already)."""
    import orjson

    return Response(orjson.dumps(obj), media_type="application/json")


def problem_response(status: int, detail: str, title: str | None = None):
    title = title or TITLES.get(status, "Error")
    return JSONResponse({"type": "about:blank", "title": title, "status": status, "detail": detail},
                        status_code=status, media_type=PROBLEM)


class BodyLimit:
    """ASGI middleware: a request body over ``limit`` bytes gets 413 (by its Content-Length, or while it streams)."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        too_large = f"the request body is over {self.limit:,} bytes"
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                return await problem_response(400, "Content-Length is not a number")(scope, receive, send)
            if declared > self.limit:
                return await problem_response(413, too_large)(scope, receive, send)
        seen = 0

        async def limited():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise Problem(413, too_large)
            return message

        return await self.app(scope, limited, send)


def _integer(value, name: str) -> int:
    if isinstance(value, bool):
        raise Problem(400, f"{name} must be an integer, not {json.dumps(value)}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise Problem(400, f"{name} must be an integer, not {json.dumps(value)[:40]}")


def _number(value, name: str) -> float:
    if isinstance(value, bool):
        raise Problem(400, f"{name} must be a number, not {json.dumps(value)}")
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            raise Problem(400, f"{name} must be a number, not {json.dumps(value)[:40]}") from None
    else:
        raise Problem(400, f"{name} must be a number, not {json.dumps(value)[:40]}")
    if math.isnan(number) or math.isinf(number):
        raise Problem(400, f"{name} must be a finite number from 0 to 1")
    return number


def options(params: dict) -> dict:
    """``limit``, ``threshold`` and ``language`` from request parameters, typed (400 when a value is not)."""
    out = {"limit": DEFAULT_LIMIT, "threshold": DEFAULT_THRESHOLD, "label_language": None}
    if params.get("limit") not in (None, ""):
        out["limit"] = _integer(params["limit"], "limit")
    if params.get("threshold") not in (None, ""):
        out["threshold"] = _number(params["threshold"], "threshold")
    if params.get("language") not in (None, ""):
        if not isinstance(params["language"], str):
            raise Problem(400, "language must be a language code")
        out["label_language"] = params["language"].strip()
    return out


async def read_body(request, *, form: bool) -> dict:
    """The request's parameters: a JSON object, or (``form``) a form-encoded body; 415 for another type."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    raw = await request.body()
    if kind == "application/json" or kind.endswith("+json"):
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as err:
            raise Problem(400, f"the body is not valid JSON ({str(err).splitlines()[0][:80]})") from None
        if not isinstance(body, dict):
            raise Problem(400, "the body must be a JSON object")
        return body
    if form and kind == "application/x-www-form-urlencoded":
        try:
            return dict(parse_qsl(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=False))
        except UnicodeDecodeError:
            raise Problem(400, "the form is not UTF-8") from None
    accepted = "application/x-www-form-urlencoded or application/json" if form else "application/json"
    raise Problem(415, f"content type {kind or '(none)'} is not read here; send {accepted}")


def positive_setting(name: str) -> int | None:
    """A positive integer from environment variable ``name`` (None when unset); one-line refusal otherwise."""
    value = os.environ.get(name, "").strip()
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise BenchError(f"{name}={value!r} is not a positive integer")
    return int(value)


def create_app(suggester: ConceptSuggester | None = None, *, max_body: int | None = None):
    """The app. Without ``suggester``, one is built from ``ELSST_SERVE_*`` environment variables (docs/serve.md):
    what ``gunicorn -k uvicorn_worker.UvicornWorker 'elsst_bench.serve:create_app()'`` runs in each worker."""
    if max_body is None:
        max_body = positive_setting("ELSST_SERVE_MAX_BODY") or MAX_BODY
    if suggester is None:  # every setting is checked before the model is loaded
        from .load import environment_settings, load_suggester

        settings, threads = environment_settings(), positive_setting("ELSST_SERVE_THREADS")
        if threads:
            import torch

            on_encoder_thread(torch.set_num_threads, threads)  # OpenMP's thread count is the calling thread's
        suggester = load_suggester(**settings)

    app = FastAPI(title="elsst-bench concept suggestion (Annif-compatible REST API)", version=__version__,
                  description="ELSST concepts for a text, from a sentence encoder with a benchmarked adapter. "
                              "Annif's REST API shapes; scores are (1 + cosine) / 2.",
                  docs_url=None, redoc_url=None)  # Swagger UI would fetch its script from a CDN
    app.state.suggester = suggester

    @app.exception_handler(Problem)
    async def _problem(request, exc: Problem):
        return problem_response(exc.status, exc.detail, exc.title)

    @app.exception_handler(HTTPException)
    async def _http(request, exc: HTTPException):
        detail = exc.detail if isinstance(exc.detail, str) else TITLES.get(exc.status_code, "Error")
        return problem_response(exc.status_code, detail)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request, exc: RequestValidationError):
        first = (exc.errors() or [{}])[0]
        where = ".".join(str(x) for x in first.get("loc", ()) if x != "body")
        return problem_response(400, f"{where}: {first.get('msg', 'invalid')}" if where else "invalid request")

    @app.exception_handler(Exception)
    async def _unexpected(request, exc: Exception):
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return problem_response(500, "unexpected error; the server's log has the details")

    def served(project_id: str) -> str:
        lang = suggester.project_language(project_id)
        if lang is None:
            raise Problem(404, f"Project '{project_id}' not found", "Project not found")
        return lang

    def run(texts: list, lang: str, opts: dict) -> list[list[dict]]:
        try:
            return suggester.suggest(texts, lang, **opts)
        except BenchError as err:
            raise Problem(400, str(err)) from None

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page():
        return HTMLResponse(resources.files(__package__).joinpath("page.html").read_text(encoding="utf-8"))

    @app.get("/v1/", tags=["API information"], summary="basic information about the API service")
    def api_info():
        return {"title": "elsst-bench REST API (Annif-compatible)", "version": __version__}

    @app.get("/v1/openapi.json", include_in_schema=False)
    def openapi_v1():
        return JSONResponse(app.openapi())

    @app.get("/v1/vocabs", tags=["Vocabulary information"], summary="the vocabulary: ELSST")
    def vocabs():
        return {"vocabs": [suggester.project(suggester.languages[0])["vocab"]]}

    @app.get("/v1/projects", tags=["Project administration"], summary="the projects: one per served language")
    def projects():
        return {"projects": suggester.projects()}

    @app.get("/v1/projects/{project_id}", tags=["Project administration"], summary="one project",
             responses={404: {"description": "Project not found"}})
    def project(project_id: str):
        return suggester.project(served(project_id))

    text_body = {"type": "object", "required": ["text"], "properties": {
        "text": {"type": "string", "description": "input text (a title, an abstract)"},
        "limit": {"type": "integer", "default": DEFAULT_LIMIT, "minimum": 1, "maximum": MAX_LIMIT},
        "threshold": {"type": "number", "default": DEFAULT_THRESHOLD, "minimum": 0, "maximum": 1},
        "language": {"type": "string", "description": "language of the labels (default: the project's)"}}}
    errors = {400: {"description": "Bad Request"}, 404: {"description": "Project not found"},
              413: {"description": "Payload Too Large"}, 415: {"description": "Unsupported Media Type"}}

    @app.post("/v1/projects/{project_id}/suggest", tags=["Automatic subject indexing"],
              summary="suggest ELSST concepts for a text", responses=errors,
              openapi_extra={"requestBody": {"required": True, "content": {
                  "application/x-www-form-urlencoded": {"schema": text_body},
                  "application/json": {"schema": text_body}}}})
    async def suggest(project_id: str, request: Request):
        lang = served(project_id)
        body = await read_body(request, form=True)
        text = body.get("text")
        if not isinstance(text, str) or not text.strip():
            raise Problem(400, "text is empty" if isinstance(text, str) or text is None else "text must be a string")
        opts = options(body)
        hits = await asyncio.wrap_future(encoder_thread().submit(run, [text], lang, opts))
        return json_response({"results": hits[0]})

    batch_body = {"type": "object", "required": ["documents"], "properties": {"documents": {
        "type": "array", "maxItems": MAX_BATCH, "items": {"type": "object", "required": ["text"], "properties": {
            "text": {"type": "string"}, "document_id": {"type": "string"}}}}}}
    query = [{"in": "query", "name": "limit", "schema": {"type": "integer", "default": DEFAULT_LIMIT, "minimum": 1,
                                                         "maximum": MAX_LIMIT}},
             {"in": "query", "name": "threshold", "schema": {"type": "number", "default": DEFAULT_THRESHOLD,
                                                             "minimum": 0, "maximum": 1}},
             {"in": "query", "name": "language", "schema": {"type": "string"}}]

    @app.post("/v1/projects/{project_id}/suggest-batch", tags=["Automatic subject indexing"],
              summary=f"suggest ELSST concepts for up to {MAX_BATCH} documents", responses=errors,
              openapi_extra={"parameters": query, "requestBody": {"required": True, "content": {
                  "application/json": {"schema": batch_body}}}})
    async def suggest_batch(project_id: str, request: Request):
        lang = served(project_id)
        body = await read_body(request, form=False)
        documents = body.get("documents")
        if not isinstance(documents, list) or not documents:
            raise Problem(400, "documents must be a non-empty list")
        if len(documents) > MAX_BATCH:
            raise Problem(400, f"at most {MAX_BATCH} documents in one batch, not {len(documents)}")
        texts = []
        for i, doc in enumerate(documents):
            if not isinstance(doc, dict) or not isinstance(doc.get("text"), str) or not doc["text"].strip():
                raise Problem(400, f"documents[{i}] has no text")
            if doc.get("document_id") is not None and not isinstance(doc["document_id"], str):
                raise Problem(400, f"documents[{i}].document_id must be a string")
            texts.append(doc["text"])
        opts = options(dict(request.query_params))
        hits = await asyncio.wrap_future(encoder_thread().submit(run, texts, lang, opts))
        return json_response([{"results": h, "document_id": doc.get("document_id")} for h, doc in zip(hits, documents)])

    @app.post("/v1/projects/{project_id}/learn", tags=["Learning from feedback"],
              summary="not offered: this service writes nothing", responses={403: {"description": "Not allowed"}})
    def learn(project_id: str):
        served(project_id)
        raise Problem(403, f"Project '{project_id}' is not configured to allow learning via API")

    app.add_middleware(BodyLimit, limit=max_body)
    return app
