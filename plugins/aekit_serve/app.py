"""The explorer's web app: a Starlette app serving the static page and JSON endpoints under ``/api/``.

``build_app(model, ...)`` returns the app (``uvicorn.run(app)`` serves it; ``starlette.testclient``
tests it). Images travel as PNG data URLs, latents as lists of numbers. Every endpoint answers JSON;
an error is ``{"error": "one line"}`` with status 400 (a bad request or image), 403 (a POST not sent
by the explorer's own page or a script, see below), 404 (an unknown face token, gallery face or a
panel the server has not got), 408 (a body that did not arrive within ``body_timeout_s``), 413 (a
body over the limit, counted while it is read, whatever Content-Length says, or an image of more
pixels than ``max_upload_mp`` million, read from its header), 415 (a POST body neither JSON nor a
multipart form), 503 ("busy": the uploads decoding now leave no room for this one, or memory ran
out; with Retry-After) or 500 (anything unexpected: logged with its traceback on the server's
stderr, one line to the page, and the server goes on).

Another web page in the user's browser can send a POST here without asking (a "simple" request:
text/plain, a urlencoded or a multipart form); it cannot add a header of its own without a CORS
preflight, which this server never approves. So every POST must carry ``X-Aekit: 1`` (the page's
script sends it; ``curl -H 'X-Aekit: 1'``), or come from this server's own origin by
``Sec-Fetch-Site: same-origin`` or ``Origin``, else it gets 403 before its body is read; and its body
must be JSON or a multipart form (415). The Host check (``allowed_hosts``) keeps a page from
reaching the server under another name (DNS rebinding), so "this server's origin" can be trusted.

=================  ==========================================================================
``GET  /``         the page (``static/index.html``; ``/static/app.js``, ``/static/style.css``)
``GET  /api/info``  the model, its directions and kinds, and which panels exist
``GET  /api/gallery``  faces to pick: prior samples with fixed seeds, then ``--gallery`` images
``POST /api/encode``   a multipart upload (field ``image``; its largest face aligned, the explorer's
                   ``align``), or JSON ``{"gallery": id}`` / ``{"latent": [...]}`` -> token, latent,
                   original, reconstruction, photo (an upload, as kept; else null)
``POST /api/decode``   ``{"latent" | "token", "edits": {direction: amount}}`` -> image, latent, photo
                   (an uploaded photo's token: the photo with the edit's change put back; else null)
``POST /api/denoise``  ``{"token", "noise": "gaussian", "amount": 0.1, "seed": 0}`` -> noisy, denoised
``POST /api/sample``   ``{"seed", "n"}`` -> latents, images (from the fitted prior)
``POST /api/interpolate``  ``{"a": latent, "b": latent, "steps"}`` -> images
``POST /api/neighbours``   ``{"token", "k"}`` -> neighbours (name, similarity, image or null)
=================  ==========================================================================
"""

from __future__ import annotations

import contextlib
import logging
import time
from importlib import resources

import anyio
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from aekit.errors import AekitError, first_line
from aekit.validate import JSONProblem, loads

from .explorer import (
    DECODE_SLOTS,
    MAX_UPLOAD_MP,
    OUT_OF_MEMORY,
    DecodeBudget,
    Explorer,
    ExplorerError,
)

log = logging.getLogger("aekit_serve")

DEFAULT_MAX_UPLOAD_MB = 10
BODY_TIMEOUT_S = 60.0  # a request body must arrive within this: a slow client holds no buffer and no task longer
HEADER = "x-aekit"  # the header the page's script sends with every POST: another page cannot add it
BODY_TYPES = ("application/json", "multipart/form-data")
JSON_LIMIT = 1 << 20  # every JSON request is small: a latent is a few hundred numbers
LOOPBACK_HOSTS = ["127.0.0.1", "localhost", "[::1]", "::1"]
# the page may load nothing from anywhere but this server (images are data: URLs)
SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'self'; img-src 'self' data:; script-src 'self'; style-src 'self'; "
                                 b"connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
                                 b"form-action 'self'; frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]


def static_dir():
    return resources.files("aekit_serve") / "static"


class SecurityHeaders:
    """ASGI middleware adding SECURITY_HEADERS to every HTTP response."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                names = {name.lower() for name, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [h for h in SECURITY_HEADERS if h[0] not in names]
            await send(message)

        return await self.app(scope, receive, send_with_headers)


def content_type(headers) -> str:
    return headers.get("content-type", "").split(";")[0].strip().lower()


class RequestGuard:
    """ASGI middleware: a POST (any method but GET, HEAD and OPTIONS, which no route takes) must come from this
    server's page or a script (403) and carry JSON or a multipart form (415), checked before its body is read."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            return await self.app(scope, receive, send)
        request = Request(scope)
        headers = request.headers
        where = f"{scope['method']} {scope['path']}"
        own_origin = f"{scope.get('scheme', 'http')}://{headers.get('host', '')}"
        if not (headers.get(HEADER) or headers.get("sec-fetch-site") == "same-origin"
                or headers.get("origin") == own_origin):
            sender = headers.get("origin") or headers.get("sec-fetch-site") or "no Origin"
            response = error_response(f"{where}: refused: not sent by the explorer's page ({sender[:80]}); a script "
                                      "must send the header X-Aekit: 1", 403)
        elif content_type(headers) not in BODY_TYPES:
            response = error_response(f"{where}: the body must be JSON (Content-Type: application/json) or a "
                                      f"multipart form, not {content_type(headers)[:80] or 'untyped'}", 415)
        else:
            return await self.app(scope, receive, send)
        await response(scope, receive, send)


def too_large(limit: int) -> ExplorerError:
    return ExplorerError(f"the upload is larger than the server's limit of {limit / 1e6:g} MB "
                         "(`aekit serve --max-upload-mb`)", status=413)


def limited(request: Request, limit: int, timeout: float = BODY_TIMEOUT_S) -> Request:
    """`request` whose body fails with 413 once more than `limit` bytes have been read (Content-Length
    over the limit fails at once; a body longer than its Content-Length, or chunked, fails while read),
    and with 408 when all of it has not arrived `timeout` seconds from now."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise too_large(limit)
    received = 0
    deadline = time.monotonic() + timeout

    async def receive():
        nonlocal received
        try:
            with anyio.fail_after(max(deadline - time.monotonic(), 0)):
                message = await request.receive()
        except TimeoutError:
            raise ExplorerError(f"the request body did not arrive within {timeout:g} s", status=408) from None
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise too_large(limit)
        return message

    return Request(request.scope, receive)


async def read_body(request: Request, limit: int, timeout: float = BODY_TIMEOUT_S) -> bytes:
    chunks = []
    async for chunk in limited(request, limit, timeout).stream():
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json(request: Request, timeout: float = BODY_TIMEOUT_S) -> dict:
    body = await read_body(request, JSON_LIMIT, timeout)
    # deep nesting (RecursionError) and 4000-digit numbers (float() overflows) are the client's fault: 400, not 500;
    # NaN passes here and is refused by each value's own check ("not finite")
    try:
        value = loads(body or b"{}", allow_nan=True)
    except JSONProblem as exc:
        raise ExplorerError(f"the request body is not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise ExplorerError("the request body must be a JSON object")
    return value


def error_response(message: str, status: int) -> JSONResponse:
    headers = None
    if status == 503:  # "busy" passes: the page or script may try again
        headers = {"retry-after": "1"}
    elif status == 408:  # the rest of a slow body is not waited for on this connection
        headers = {"connection": "close"}
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def endpoint(work):
    """An async handler from ``work(request) -> dict``: JSON out, every error as one line."""

    async def handler(request: Request):
        try:
            return JSONResponse(await work(request))
        except ExplorerError as exc:
            return error_response(first_line(exc), exc.status)
        except AekitError as exc:
            return error_response(first_line(exc), 400)
        except HTTPException as exc:  # starlette's own, e.g. a malformed multipart body
            return error_response(f"{request.url.path}: {exc.detail}", exc.status_code)
        except MemoryError:  # the server's state, not the request's fault: never "damaged", never a 500
            log.exception("aekit serve: %s %s ran out of memory", request.method, request.url.path)
            return error_response(OUT_OF_MEMORY, 503)
        except Exception as exc:  # logged in full here; the page gets one line and the server goes on
            log.exception("aekit serve: %s %s failed", request.method, request.url.path)
            return error_response(f"the server failed on this request ({type(exc).__name__}: {first_line(exc)}); "
                                  "its log has the details", 500)

    handler.__name__ = work.__name__
    return handler


def build_app(model, denoiser=None, features=None, features_path=None, gallery_dir=None,
              max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB, allowed_hosts=None, explorer: Explorer | None = None,
              log_message=None, max_upload_mp: float = MAX_UPLOAD_MP, decode_budget_mp: float | None = None,
              decode_slots: int = DECODE_SLOTS, body_timeout_s: float = BODY_TIMEOUT_S, align: str = "auto") -> Starlette:
    """The explorer's Starlette app for `model` (see the module docstring for the endpoints).

    `allowed_hosts`: Host header values accepted (``aekit serve`` passes the loopback names when it
    binds to loopback, so a web page elsewhere cannot reach the server through DNS rebinding);
    None accepts any. Uploads: at most `max_upload_mb` MB and `max_upload_mp` million pixels each
    (413); at most `decode_slots` of them, of `decode_budget_mp` million pixels together (default
    explorer.DECODE_BUDGET_MP, at least `max_upload_mp`), decoding at once, others get 503 "busy".
    Every request body must arrive within `body_timeout_s` seconds (408). `align`: how uploads are aligned
    (``aekit.alignment``'s modes; used when no `explorer` is given).
    """
    explorer = explorer or Explorer(model, denoiser=denoiser, features=features, features_path=features_path,
                                    gallery_dir=gallery_dir, log=log_message, align=align)
    upload_limit = int(max_upload_mb * 1_000_000)
    budget = DecodeBudget(max_pixels=round(max_upload_mp * 1e6), slots=decode_slots,
                          total_pixels=None if decode_budget_mp is None else round(decode_budget_mp * 1e6))

    async def info(request):
        return {**explorer.info(), "max_upload_mb": max_upload_mb}

    async def gallery(request):
        return {"gallery": await run_in_threadpool(explorer.gallery)}

    async def encode(request):
        if content_type(request.headers) == "application/json":
            body = await read_json(request, body_timeout_s)
            if "gallery" in body:
                return await run_in_threadpool(explorer.encode_gallery, body["gallery"])
            if "latent" in body:
                return await run_in_threadpool(explorer.encode_latent, body["latent"], body.get("name") or "sample")
            raise ExplorerError('give an image upload, {"gallery": id} or {"latent": [...]}')
        # else multipart/form-data, as RequestGuard lets through nothing else
        form = await limited(request, upload_limit, body_timeout_s).form(max_files=1, max_fields=4)
        try:
            upload = form.get("image")
            if upload is None or isinstance(upload, str):
                raise ExplorerError("the form has no file in its 'image' field")
            data = await upload.read(upload_limit + 1)
            name = upload.filename or "upload"
        finally:
            await form.close()
        if len(data) > upload_limit:
            raise too_large(upload_limit)
        return await run_in_threadpool(explorer.encode_upload, data, name, budget)

    async def decode(request):
        body = await read_json(request, body_timeout_s)
        return await run_in_threadpool(explorer.decode, body.get("latent"), body.get("token"), body.get("edits"))

    async def denoise(request):
        body = await read_json(request, body_timeout_s)
        return await run_in_threadpool(explorer.denoise, body.get("token"), body.get("noise", "gaussian"),
                                       body.get("amount", 0.1), body.get("seed", 0))

    async def sample(request):
        body = await read_json(request, body_timeout_s)
        return await run_in_threadpool(explorer.sample, body.get("seed", 0), body.get("n", 8))

    async def interpolate(request):
        body = await read_json(request, body_timeout_s)
        return await run_in_threadpool(explorer.interpolate, body.get("a"), body.get("b"), body.get("steps", 8))

    async def neighbours(request):
        body = await read_json(request, body_timeout_s)
        return await run_in_threadpool(explorer.neighbours, body.get("token"), body.get("k", 8))

    async def page(request):
        return FileResponse(str(static_dir() / "index.html"), media_type="text/html")

    async def http_error(request, exc: HTTPException):
        if request.url.path.startswith("/api/"):
            return error_response(f"{request.method} {request.url.path}: {exc.detail}", exc.status_code)
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code)

    api = [("info", info, "GET"), ("gallery", gallery, "GET"), ("encode", encode, "POST"), ("decode", decode, "POST"),
           ("denoise", denoise, "POST"), ("sample", sample, "POST"), ("interpolate", interpolate, "POST"),
           ("neighbours", neighbours, "POST")]
    routes = [Route("/", page, methods=["GET"])]
    routes += [Route(f"/api/{name}", endpoint(work), methods=[method]) for name, work, method in api]
    routes.append(Mount("/static", app=StaticFiles(directory=str(static_dir())), name="static"))
    middleware = [Middleware(SecurityHeaders)]
    if allowed_hosts:
        middleware.append(Middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts)))
    middleware.append(Middleware(RequestGuard))  # after the Host check: it trusts the Host header for the origin
    app = Starlette(routes=routes, middleware=middleware, exception_handlers={HTTPException: http_error})
    app.state.explorer = explorer
    return app


@contextlib.contextmanager
def running(app, host: str = "127.0.0.1"):
    """Serve `app` with uvicorn in a background thread on a free port; yields the page's URL.

    For tests and scripts (``docs/make_explorer_screenshot.py``); ``aekit serve`` runs in the foreground.
    """
    import threading
    import time

    import uvicorn

    from .command import bind, url_of

    sock = bind(host, 0)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=1))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the explorer's server did not start")
            time.sleep(0.02)
        yield url_of(sock, host)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
