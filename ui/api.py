"""The plain HTTP JSON API, beside the chat page or alone (`rag serve --api-only`).

In: JSON (or form fields) and multipart uploads. Out: the answer JSON of `rag ask --json`, the library's
documents, and for anything a caller got wrong one ``{"error": message}`` with a 4xx status (5xx when the
server failed); no traceback reaches a caller, and the server stays up.
"""
from __future__ import annotations

import base64
import binascii
import json
import logging
import secrets
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.routing import APIRoute, APIRouter
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.staticfiles import StaticFiles

from rag.errors import (BadSetting, DocumentNotFound, EmptyQuestion, IndexCorrupt, IndexLocked, IndexNotFound, RagError,
                        StoreUnreachable)
from rag.pipeline import MAX_QUESTION_CHARS
from ui import library

log = logging.getLogger("rag.api")

MAX_K = 20  # the page's slider goes as far
MAX_HISTORY = 50
MAX_FILES = 20  # per upload request
MAX_ASK_BYTES = 256 * 1024  # a request body other than an upload: a question, its history and k fit many times
MAX_UPLOAD_REQUEST = MAX_FILES * library.MAX_UPLOAD_BYTES + 2**20
EXAMPLE = '{"question": "Where is iFlytek based?"}'
UNAUTHORIZED = 'This server needs a user name and password: send them with HTTP Basic auth (curl -u user:password).'
TOO_LARGE_FLAG = "rag.too_large"  # set in the ASGI scope when a body outgrew its limit while being read
DOCS_ASSETS = "/api/docs-assets"


class ApiError(Exception):
    """A refusal with its HTTP status; ``message`` is the one line the caller reads."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers


# ------------------------------------------------------------------------------------------ schema

class AskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: str = Field(description=f"The question, at most {MAX_QUESTION_CHARS:,} characters.",
                          examples=["Where is iFlytek based?"])
    history: list[str] = Field(default_factory=list, max_length=MAX_HISTORY,
                               description="Earlier questions of the conversation, oldest first (for follow-ups).")
    # strict: JSON true or 2.0 is not a k (a form's "2" is turned into 2 where the form is read)
    k: int | None = Field(None, ge=1, le=MAX_K, strict=True,
                          description="Passages to return (default 5); the answer always reads 5.")


class CitationOut(BaseModel):
    n: int
    source: str
    title: str | None
    date: str | None
    start: int = Field(description="Offset of the quote's first character in the source text.")
    end: int
    quote: str = Field(description="Exactly the source text from start to end.")
    encoding: str = Field(description="How the source file was decoded (offsets index that text), or html-text / "
                                      "pdf-text: the text extracted from a web page or PDF.")
    page: int | None = Field(None, description="1-based PDF page the quote starts on; null for other formats.")
    url: str | None = Field(None, description="The web page's canonical URL, when it has one.")


class PassageOut(BaseModel):
    rank: int
    source: str
    start: int
    end: int
    score: float
    text: str
    encoding: str


class AnswerOut(BaseModel):
    """The JSON of `rag ask --json` (README, "JSON")."""

    question: str
    answer: str = Field(description='The quoted sentences with [n] markers; "" when the articles don\'t answer.')
    abstained: bool
    outcome: str = Field(description='"answer", "possible" or "refuse".')
    confidence: float
    citations: list[CitationOut]
    passages: list[PassageOut]
    timings_ms: dict[str, float]


class DocumentOut(BaseModel):
    id: str
    title: str | None
    date: str | None
    chars: int
    bytes: int
    passages: int


class DocumentsOut(BaseModel):
    documents: list[DocumentOut]


class UploadOut(BaseModel):
    added: list[str] = Field(description="Ids of the documents added.")
    refused: list[str] = Field(description='One line per file not added: "name: reason".')


class RemovedOut(BaseModel):
    removed: str
    message: str


class HealthOut(BaseModel):
    status: str
    documents: int
    passages: int
    model: str


class ErrorOut(BaseModel):
    error: str


def _errors(*statuses: int) -> dict:
    return {s: {"model": ErrorOut} for s in statuses}


# ------------------------------------------------------------------------------------------ errors

def status_of(error: RagError) -> int:
    if isinstance(error, (EmptyQuestion, BadSetting)):
        return 422
    if isinstance(error, DocumentNotFound):
        return 404
    if isinstance(error, library.UploadRejected):
        return 422
    if isinstance(error, library.UpdateFailed):
        return 500
    if isinstance(error, (IndexLocked, IndexNotFound, IndexCorrupt, StoreUnreachable)):
        return 503  # the library is being rebuilt or cannot be read: try again later
    return 409  # the library's state forbids it (the last document, a document already gone)


def message_of(error: RagError) -> str:
    if isinstance(error, EmptyQuestion):  # the CLI's message names a command
        return f"The question has no words in it: send a question in words, e.g. {EXAMPLE}"
    if isinstance(error, DocumentNotFound):
        return "That document is not in the library: GET /api/documents lists them."
    return " ".join(str(error).split())


def _validation_message(error: ValidationError | RequestValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
    text = first.get("msg", "invalid value")
    if first.get("type") == "missing":
        text = "required"
    return f"{where}: {text}" if where else text


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


class JsonErrors(APIRoute):
    """Every failure of a route becomes one ``{"error": …}`` line; an unexpected one is logged in full
    for whoever runs the server and reported to the caller as a 500 without its traceback."""

    def get_route_handler(self):
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except Exception as e:
                if request.scope.get(TOO_LARGE_FLAG):
                    return error_response(413, request.scope[TOO_LARGE_FLAG])
                if isinstance(e, ApiError):
                    return error_response(e.status, e.message, e.headers)
                if isinstance(e, (ValidationError, RequestValidationError)):
                    return error_response(422, _validation_message(e))
                if isinstance(e, HTTPException):
                    return error_response(e.status_code, str(e.detail), e.headers)
                if isinstance(e, RagError):
                    return error_response(status_of(e), message_of(e))
                log.exception("%s %s failed", request.method, request.url.path)
                text = " ".join(f"{type(e).__name__}: {e}".split())
                return error_response(500, f"Something went wrong on the server ({text}); nothing was changed, try again.")

        return guarded


# ------------------------------------------------------------------------------------------ gate

def _authorized(header: bytes | None, credentials: tuple[str, str]) -> bool:
    scheme, _, value = (header or b"").decode("latin-1").partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        user, sep, password = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    # Both compared in full whatever the first gives: the time taken does not tell which was wrong.
    ok_user = secrets.compare_digest(user.encode(), credentials[0].encode())
    ok_password = secrets.compare_digest(password.encode(), credentials[1].encode())
    return bool(sep) and ok_user and ok_password


class Gate:
    """ASGI middleware in front of the API: authentication and body size, checked before a body is read,
    so an unauthenticated or oversized upload is refused without being stored anywhere."""

    def __init__(self, app, credentials: tuple[str, str] | None, api_only: bool):
        self.app, self.credentials, self.api_only = app, credentials, api_only

    def guards(self, path: str) -> bool:
        return self.api_only or path == "/api" or path.startswith(("/api/", "/docs", "/openapi.json"))

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not self.guards(scope["path"]):
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        if self.credentials is not None and not _authorized(headers.get(b"authorization"), self.credentials):
            response = error_response(401, UNAUTHORIZED, {"WWW-Authenticate": 'Basic realm="rag", charset="UTF-8"'})
            return await response(scope, receive, send)
        upload = scope["method"] == "POST" and scope["path"].rstrip("/") == "/api/documents"
        limit = MAX_UPLOAD_REQUEST if upload else MAX_ASK_BYTES
        too_large = (f"The upload is too large: send at most {MAX_FILES} files of "
                     f"{library.MAX_UPLOAD_BYTES // 2**20} MB each per request." if upload else
                     f"The request body is over {limit // 1024} KB: a question is at most {MAX_QUESTION_CHARS:,} characters.")
        try:
            declared = int(headers.get(b"content-length", b"0"))
        except ValueError:
            return await error_response(400, "The Content-Length header is not a number.")(scope, receive, send)
        if declared > limit:
            return await error_response(413, too_large)(scope, receive, send)
        seen = 0

        async def counted():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:  # a body sent without (or beyond) its Content-Length
                    scope[TOO_LARGE_FLAG] = too_large
                    return {"type": "http.disconnect"}
            return message

        await self.app(scope, counted, send)


# ------------------------------------------------------------------------------------------ routes

async def _ask_fields(request: Request) -> dict[str, Any]:
    """The fields of an ask request: a JSON object whatever the Content-Type says (curl -d sends JSON
    labelled as a form), or form fields (question=…&history=…&k=…)."""
    raw = await request.body()
    content_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if content_type == "application/x-www-form-urlencoded" and not raw.lstrip().startswith((b"{", b"[", b'"')):
        try:
            fields = parse_qs(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
        except UnicodeDecodeError:
            raise ApiError(400, "The form is not UTF-8 text.") from None
        out = {name: values if name == "history" else values[-1] for name, values in fields.items()}
        if isinstance(out.get("k"), str) and out["k"].strip().isdigit():
            out["k"] = int(out["k"])
        return out
    if not raw.strip():
        raise ApiError(400, f"The request has no body: send a JSON object like {EXAMPLE}")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise ApiError(400, f"The body is not valid JSON ({e}): send an object like {EXAMPLE}") from None
    except RecursionError:
        raise ApiError(400, f"The body nests too deeply to read: send an object like {EXAMPLE}") from None
    if not isinstance(body, dict):
        raise ApiError(422, f"The body must be a JSON object like {EXAMPLE}")
    return body


def create_api(holder, lib: library.Library, credentials: tuple[str, str] | None = None,
               api_only: bool = False) -> FastAPI:
    """The API app over ``holder`` (ui.app.Holder: the live assistant) and ``lib`` (the library the page
    changes too, so their changes are serialised by one lock). Mount the page onto it to serve both."""
    app = FastAPI(title="rag — ask your articles", version="1",
                  description="Quoted answers with exact citations, and the library they come from. "
                              "Every error is `{\"error\": message}` with a 4xx status (5xx: the server failed).",
                  docs_url=None, redoc_url=None)
    router = APIRouter(prefix="/api", route_class=JsonErrors)

    @router.post("/ask", response_model=None, openapi_extra={"requestBody": {"required": True, "content": {
        "application/json": {"schema": AskRequest.model_json_schema(), "example": json.loads(EXAMPLE)},
        "application/x-www-form-urlencoded": {"schema": AskRequest.model_json_schema()}}}},
        responses={200: {"model": AnswerOut}, **_errors(400, 401, 413, 422, 503)}, summary="Answer a question")
    async def ask(request: Request) -> Response:
        """The answer JSON of `rag ask --json`. A refusal is a 200 whose `outcome` is "refuse"."""
        body = AskRequest.model_validate(await _ask_fields(request))
        if len(body.question) > MAX_QUESTION_CHARS:
            raise ApiError(422, f"The question is {len(body.question):,} characters long; the limit is "
                                f"{MAX_QUESTION_CHARS:,}: shorten it.")
        if any(len(h) > MAX_QUESTION_CHARS for h in body.history):
            raise ApiError(422, f"An earlier question in history is over {MAX_QUESTION_CHARS:,} characters: shorten it.")
        answer = await run_in_threadpool(lambda: holder.current().ask(body.question, history=body.history, k=body.k))
        return Response(answer.to_json().encode("utf-8"), media_type="application/json")

    @router.get("/documents", response_model=DocumentsOut, summary="List the library")
    def documents() -> dict:
        return {"documents": [{"id": d.doc_id, "title": d.title, "date": d.date, "chars": d.chars, "bytes": d.bytes,
                               "passages": d.passages} for d in holder.current().store.catalog()]}

    upload_schema = {"type": "object", "required": ["files"], "properties": {
        "files": {"type": "array", "items": {"type": "string", "format": "binary"},
                  "description": f".txt or .md articles, {library.MAX_UPLOAD_BYTES // 2**20} MB each, {MAX_FILES} at most"}}}

    @router.post("/documents", status_code=201, response_model=None, summary="Add articles to the library",
                 openapi_extra={"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": upload_schema}}}},
                 responses={201: {"model": UploadOut}, **_errors(401, 413, 422, 500, 503)})
    async def upload(request: Request) -> Response:
        """Each file is added or refused on its own, with its reason, as on the page; 422 when none was added."""
        if not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
            raise ApiError(422, "Send the files as multipart form data: curl -F files=@article.txt …/api/documents")
        async with request.form(max_files=MAX_FILES + 1) as form:
            # multi_items: values() keeps only the last file sent under each field name
            files = [v for _, v in form.multi_items() if isinstance(v, UploadFile)]
            if not files:
                raise ApiError(422, "No file in the request: curl -F files=@article.txt …/api/documents")
            if len(files) > MAX_FILES:
                raise ApiError(413, f"{len(files)} files: send at most {MAX_FILES} per request.")
            for f in files:
                if f.size is not None and f.size > library.MAX_UPLOAD_BYTES:
                    raise ApiError(413, f"{f.filename}: {f.size / 2**20:.1f} MB is over the "
                                        f"{library.MAX_UPLOAD_BYTES // 2**20} MB limit; nothing was added.")
            with tempfile.TemporaryDirectory(prefix="rag-upload-") as tmp:
                pairs = []
                for i, f in enumerate(files):
                    path = Path(tmp) / f"upload-{i}"
                    path.write_bytes(await f.read())
                    pairs.append((path, f.filename or "upload"))
                added, problems = await run_in_threadpool(
                    lambda: lib.add(pairs, store=holder.current().store, after=holder.reload))
        if not added:
            return JSONResponse({"error": "Nothing was added: " + "; ".join(problems), "added": [], "refused": problems},
                                status_code=422)
        return JSONResponse({"added": added, "refused": problems}, status_code=201)

    @router.delete("/documents/{doc_id:path}", response_model=RemovedOut, responses=_errors(401, 404, 409, 500, 503),
                   summary="Remove a document")
    def remove(doc_id: str) -> dict:
        """Uploaded files are kept aside (the page can restore them); other files are only left out of the index."""
        try:
            message = lib.remove(holder.current().store, doc_id, after=holder.reload)
        except DocumentNotFound:
            raise ApiError(404, f"No document {doc_id!r} in the library: GET /api/documents lists them.") from None
        return {"removed": doc_id, "message": message}

    @router.get("/health", response_model=HealthOut, summary="Is the server answering")
    def health() -> dict:
        store = holder.current().store
        return {"status": "ok", "documents": len(store.catalog()), "passages": len(store), "model": store.model_id}

    @router.api_route("/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
    def unknown(rest: str, request: Request):
        known = [r for r in router.routes if isinstance(r, APIRoute) and r.path_regex.match(request.url.path)
                 and r.name != "unknown"]
        if known:
            allowed = sorted({m for r in known for m in r.methods})
            raise ApiError(405, f"{request.method} is not allowed on {request.url.path}: use {', '.join(allowed)}.",
                           {"Allow": ", ".join(allowed)})
        raise ApiError(404, f"No API route {request.url.path}: the routes are listed at /docs.")

    _docs(app)  # before the router: its catch-all route would shadow the docs' assets under /api/
    app.include_router(router)
    if api_only:
        @app.api_route("/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
        def no_page(rest: str) -> JSONResponse:
            return error_response(404, "This server serves the HTTP API only (rag serve --api-only): see /docs.")
    _declare_auth(app, credentials)
    app.add_middleware(Gate, credentials=credentials, api_only=api_only)
    return app


def _docs(app: FastAPI) -> None:
    """/docs from Swagger UI files shipped by the fastapi-offline package: FastAPI's own page loads them
    from a CDN, which an offline machine cannot reach."""
    import fastapi_offline

    assets = Path(fastapi_offline.__file__).parent / "static"
    app.mount(DOCS_ASSETS, StaticFiles(directory=assets), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url=app.openapi_url, title=f"{app.title} — API",
                                   swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
                                   swagger_favicon_url=f"{DOCS_ASSETS}/favicon.png")


def _declare_auth(app: FastAPI, credentials) -> None:
    """Say in the OpenAPI schema that every route needs HTTP Basic auth, when it does (Gate enforces it)."""
    if credentials is None:
        return
    plain = app.openapi

    def openapi() -> dict:
        schema = plain()
        schema.setdefault("components", {})["securitySchemes"] = {"basic": {"type": "http", "scheme": "basic"}}
        schema["security"] = [{"basic": []}]
        return schema

    app.openapi = openapi
