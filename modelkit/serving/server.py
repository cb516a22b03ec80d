"""``modelkit serve``: a trained run behind HTTP, on Starlette + uvicorn.

Starlette (BSD-3) and uvicorn (BSD-3) are small, maintained ASGI pieces; Starlette parses
multipart uploads through python-multipart (Apache-2.0). FastAPI would add pydantic and schema
generation on top without changing what three routes need.

- ``POST /predict``: one or many images as multipart form-data (any field name; or one raw image
  body), ``?top_k=N``; answers ``{"predictions": [...]}`` in upload order, each with the
  Prediction's fields (labels, probabilities, and whatever else the Predictor reports).
- ``GET /health``: ``ok`` and the batches run so far by size.
- ``GET /model``: classes, input size, architecture, run id, backend.

Every image is decoded in a worker thread as it arrives; the model then sees whatever images
are waiting together (``DynamicBatcher``). Bad input ends in a 4xx with a one-line ``error``:
a body over ``max_body_bytes`` (413), anything that is not a readable image or has more pixels
than ``max_pixels`` (400, checked from the header before decoding, so a decompression bomb
costs nothing), no image at all (400), a ``top_k`` that is not a whole number in range (400).
The server keeps serving whatever a request sends. It answers only the Host names it is given
(400 otherwise), and bounds its connections (``http_limits``: count, head deadline, head size).
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import math
import re
import socket
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import numpy as np
from PIL import Image
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from modelkit.data.imageio import DECODE_ERRORS, FORMATS, ImageLoadError
from modelkit.serving.batching import DynamicBatcher, QueueFullError
from modelkit.serving.http_limits import LOCAL_HOSTS, server_options
from modelkit.serving.predictor import Predictor

MAX_BODY_BYTES = 32 * 1024 * 1024
MAX_PIXELS = 50_000_000  # about 8k x 6k; a larger header is refused before any decoding
MAX_FILES = 64
# ASCII digits only, and few enough to be a number: str.isdigit() also accepts "²" and "٣", which
# int() refuses, and int() refuses more than 4,300 digits; both had ended in a 500.
_WHOLE_NUMBER = re.compile(r"[0-9]{1,18}")


class BadRequest(Exception):
    """A request the server refuses, with the status and the message the client sees."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _json(payload: Any, status: int = 200) -> Response:
    def default(value: Any) -> Any:
        if isinstance(value, np.generic):
            return value.item()
        return str(value)

    body = json.dumps(payload, default=default, allow_nan=False)
    return Response(body, status_code=status, media_type="application/json")


def _finite(value: Any) -> Any:
    """JSON has no NaN or infinity; such a number becomes null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def prediction_dict(prediction: Any) -> dict[str, Any]:
    """A Prediction as JSON: every field it has (so new ones pass through), without ``source``."""
    fields = dataclasses.asdict(prediction) if dataclasses.is_dataclass(prediction) else {}
    fields.pop("source", None)
    fields.pop("error", None)
    return {k: _finite(v) for k, v in fields.items()}


class PredictionService:
    """The Predictor, its batcher and the limits: what the routes call."""

    def __init__(
        self,
        predictor: Predictor,
        max_batch: int = 32,
        max_wait_s: float = 0.005,
        max_body_bytes: int = MAX_BODY_BYTES,
        max_pixels: int = MAX_PIXELS,
        top_k: int = 5,
    ) -> None:
        self.predictor = predictor
        self.max_body_bytes = max_body_bytes
        self.max_pixels = max_pixels
        self.top_k = top_k
        self.batcher = DynamicBatcher(self._run_batch, max_batch, max_wait_s)

    def _run_batch(self, items: list[tuple[np.ndarray, str, int]]) -> list[Any]:
        """One forward pass for every waiting image (each already decoded and resized)."""
        k = max(top_k for _, _, top_k in items)
        images = [Image.fromarray(square) for square, _, _ in items]
        out = self.predictor.predict_many(images, k, names=[name for _, name, _ in items])
        return [_cut(p, top_k) for p, (_, _, top_k) in zip(out, items)]

    def decode(self, data: bytes, name: str) -> np.ndarray:
        """The resized square the model sees, or BadRequest naming the file and the problem."""
        if not data:
            raise BadRequest(400, f"{name}: the file is empty")
        try:
            with warnings.catch_warnings():  # the size is checked below, with a clear message
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                # only the photo formats load_image reads: a DDS of unknown kind raised
                # NotImplementedError from its header and was answered 500
                with Image.open(io.BytesIO(data), formats=FORMATS) as probe:
                    width, height = probe.size
        except Image.DecompressionBombError:
            raise BadRequest(400, f"{name}: image is too large (pixel count)") from None
        except (OSError, *DECODE_ERRORS):  # PIL raises SyntaxError for some headers
            raise BadRequest(400, f"{name}: not an image this server can read") from None
        if width * height > self.max_pixels:
            raise BadRequest(
                400,
                f"{name}: image is too large ({width}x{height} pixels, limit {self.max_pixels:,})",
            )
        try:
            return self.predictor.preprocess(io.BytesIO(data))
        except ImageLoadError as exc:
            raise BadRequest(400, f"{name}: {exc.reason}") from None
        except (OSError, ValueError, MemoryError) as exc:
            raise BadRequest(400, f"{name}: cannot be decoded ({type(exc).__name__})") from None

    def model_info(self) -> dict[str, Any]:
        p = self.predictor
        return {
            "run_id": p.checkpoint.parent.parent.name,
            "architecture": p.arch,
            "classes": list(p.classes),
            "input_size": p.image_size,
            "resize_size": p.resize_size,
            "backend": getattr(p, "backend", "pytorch"),
            "max_batch": self.batcher.max_batch,
            "top_k": self.top_k,
        }


def _cut(prediction: Any, top_k: int) -> Any:
    """A batch ran with the largest k asked for; each request gets its own k."""
    labels = prediction.labels[:top_k]
    return dataclasses.replace(
        prediction, labels=labels, probabilities=prediction.probabilities[:top_k]
    )


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, or 413 once it is over ``limit``. What the client still sends is read and
    dropped (up to 4 limits) first: a server that closes mid-upload leaves most clients with a
    reset connection instead of the reason."""
    declared = request.headers.get("content-length")
    size = _whole_number(declared) if declared is not None else 0
    if size is None:
        raise BadRequest(400, "Content-Length is not a number")
    over = size > limit
    chunks, received = [], 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            over, chunks = True, []
        if over and received > 4 * limit:
            break
        if not over:
            chunks.append(chunk)
    if over:
        size = max(size, received)
        raise BadRequest(413, f"request body is over the limit of {limit:,} bytes ({size:,} sent)")
    return b"".join(chunks)


async def _uploads(request: Request, body: bytes) -> list[tuple[str, bytes]]:
    """(name, bytes) of every file in a multipart body, or the raw body as one image."""
    kind = request.headers.get("content-type", "")
    if not kind.startswith("multipart/form-data"):
        return [("image", body)] if body else []

    async def replay() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(request.scope, replay).form(max_files=MAX_FILES, max_fields=MAX_FILES)
    except Exception as exc:  # noqa: BLE001 - starlette raises its own HTTPException and others
        raise BadRequest(400, f"malformed multipart body: {getattr(exc, 'detail', exc)}") from None
    files = []
    try:
        for _, value in form.multi_items():
            if isinstance(value, UploadFile):
                files.append((value.filename or "image", await value.read()))
    finally:
        await form.close()
    return files


def _whole_number(text: str) -> int | None:
    """``text`` as a non-negative whole number written in ASCII digits, else None."""
    return int(text) if _WHOLE_NUMBER.fullmatch(text) else None


def _top_k(request: Request, default: int, most: int) -> int:
    text = request.query_params.get("top_k")
    if text is None:
        return min(default, most)
    k = _whole_number(text)
    if k is None or not 1 <= k <= most:
        shown = text if len(text) <= 20 else f"{text[:20]}… ({len(text):,} characters)"
        raise BadRequest(400, f"top_k must be a whole number from 1 to {most}, got {shown!r}")
    return k


def create_app(service: PredictionService, hosts: Sequence[str] = LOCAL_HOSTS) -> Starlette:
    """The ASGI app for ``service`` (uvicorn runs it; tests can too). It answers only requests
    whose Host is one of ``hosts`` (``http_limits.allowed_hosts``); any other name gets 400."""

    async def predict(request: Request) -> Response:
        try:
            top_k = _top_k(request, service.top_k, len(service.predictor.classes))
            body = await _read_body(request, service.max_body_bytes)
            files = await _uploads(request, body)
            if not files:
                raise BadRequest(
                    400, "no image in the request: send multipart form-data with one or more files"
                )
            squares = await asyncio.gather(
                *(asyncio.to_thread(service.decode, data, name) for name, data in files),
                return_exceptions=True,
            )
            refused = [s for s in squares if isinstance(s, BaseException)]
            if refused:
                if not isinstance(refused[0], BadRequest):
                    raise refused[0]
                raise BadRequest(400, "; ".join(str(e) for e in refused))
            futures = [
                asyncio.wrap_future(service.batcher.submit((sq, name, top_k)))
                for sq, (name, _) in zip(squares, files)
            ]
            predictions = await asyncio.gather(*futures)
        except BadRequest as exc:
            return _json({"error": exc.message}, exc.status)
        except QueueFullError as exc:
            return _json({"error": str(exc)}, 503)
        return _json({"predictions": [prediction_dict(p) for p in predictions]})

    async def health(request: Request) -> Response:  # noqa: ARG001
        return _json({"status": "ok", **service.batcher.stats()})

    async def model(request: Request) -> Response:  # noqa: ARG001
        return _json(service.model_info())

    routes = [
        Route("/predict", predict, methods=["POST"]),
        Route("/health", health, methods=["GET"]),
        Route("/model", model, methods=["GET"]),
    ]

    @asynccontextmanager
    async def lifespan(app: Starlette) -> Any:  # noqa: ARG001
        yield
        await asyncio.to_thread(service.batcher.close)  # answer what is queued, then stop

    guard = Middleware(TrustedHostMiddleware, allowed_hosts=list(hosts), www_redirect=False)
    return Starlette(routes=routes, lifespan=lifespan, middleware=[guard])


@contextmanager
def running(app: Starlette, host: str = "127.0.0.1", port: int = 0, **limits: Any) -> Iterator[str]:
    """Serve ``app`` from a background thread, with the command's connection limits
    (``limits``: ``http_limits.server_options``' arguments); yields its base URL (tests and
    benchmarks)."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    config = uvicorn.Config(app, log_level="warning", lifespan="on", **server_options(**limits))
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        yield f"http://{host}:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
