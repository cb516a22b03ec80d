"""A tiny client for ``modelkit serve``: multipart uploads with the standard library only, so
another program (or the tests and benchmark) can call the server without extra packages."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Sequence
from typing import Any


def encode_multipart(files: Sequence[tuple[str, bytes]], field: str = "file") -> tuple[bytes, str]:
    """The body and Content-Type of a multipart/form-data upload of ``(filename, bytes)`` pairs."""
    boundary = f"modelkit-{uuid.uuid4().hex}"
    parts = []
    for name, data in files:
        safe = name.replace('"', "_").replace("\r", "_").replace("\n", "_")
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{safe}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        )
        parts += [head.encode(), data, b"\r\n"]
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def post(
    url: str, body: bytes, content_type: str, timeout: float = 60.0
) -> tuple[int, dict[str, Any]]:
    """POST ``body``; returns the status and the decoded JSON answer (also for 4xx/5xx)."""
    request = urllib.request.Request(url, data=body, method="POST")
    request.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        text = exc.read()
        try:
            return exc.code, json.loads(text)
        except ValueError:
            return exc.code, {"error": text.decode("utf-8", "replace")}


def predict_files(
    base_url: str, files: Sequence[tuple[str, bytes]], top_k: int | None = None
) -> tuple[int, dict[str, Any]]:
    """Send images to ``base_url``/predict; returns the status and the JSON answer."""
    body, kind = encode_multipart(files)
    query = f"?top_k={top_k}" if top_k is not None else ""
    return post(f"{base_url.rstrip('/')}/predict{query}", body, kind)
