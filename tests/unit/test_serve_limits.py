"""``modelkit serve`` against issue #29's findings: a ``top_k`` that is not ASCII digits or has
thousands of them, a Host name nobody allowed, and connections whose request head never ends."""

from __future__ import annotations

import http.client
import socket
import time
from urllib.parse import quote, urlsplit

import pytest
from helpers import png_bytes

from modelkit.serving.http_client import predict_files
from modelkit.serving.http_limits import allowed_hosts
from modelkit.serving.predictor import Predictor
from modelkit.serving.server import PredictionService, create_app, running

CLASSES = ["red", "green", "blue"]
RED_PNG = png_bytes((200, 30, 30), (40, 48))


@pytest.fixture(scope="module")
def predictor(tmp_path_factory, helpers):
    ckpt = helpers.write_checkpoint(
        tmp_path_factory.mktemp("serve") / "run-1" / "checkpoints" / "best.pt", classes=CLASSES
    )
    return Predictor(ckpt, device="cpu")


@pytest.fixture
def service(predictor):
    """A service per test: a server that stops closes its service's batcher."""
    return PredictionService(predictor, max_batch=4, max_wait_s=0.01)


def _get(url: str, path: str, host: str | None = None) -> tuple[int, bytes]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        conn.putrequest("GET", path, skip_host=host is not None)
        if host is not None:
            conn.putheader("Host", host)
        conn.endheaders()
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _partial_head(url: str) -> socket.socket:
    """A connection that starts a request and never finishes its headers (slowloris)."""
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=30)
    sock.sendall(b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
    return sock


def test_a_top_k_that_is_not_plain_ascii_digits_is_a_400_naming_the_range(service):
    with running(create_app(service)) as url:
        parts = urlsplit(url)
        for top_k in ("²", "٣", "1" * 5000, "-1", " 2", "0x2"):
            conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
            conn.request("POST", f"/predict?top_k={quote(top_k)}", body=RED_PNG)
            response = conn.getresponse()
            answer = response.read().decode()
            conn.close()
            assert response.status == 400, top_k[:20]
            assert "top_k must be a whole number from 1 to 3" in answer
            assert len(answer) < 300  # a 5,000-digit value is not echoed back whole
        assert predict_files(url, [("a.png", RED_PNG)], top_k=2)[0] == 200


def test_only_the_allowed_host_names_are_answered(service):
    with running(create_app(service, allowed_hosts("127.0.0.1", ["ml.example.org"]))) as url:
        port = urlsplit(url).port
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", "ML.example.org", f"[::1]:{port}"):
            assert _get(url, "/health", host)[0] == 200, host
        for host in ("attacker.example", f"attacker.example:{port}", "127.0.0.1.nip.io", ""):
            status, body = _get(url, "/model", host)
            assert status == 400 and b"Invalid host" in body, host


def test_allowed_hosts_are_the_bound_address_and_this_machine_unless_it_listens_everywhere():
    assert allowed_hosts("127.0.0.1") == ["localhost", "127.0.0.1", "[::1]"]
    assert allowed_hosts("192.168.1.20") == ["localhost", "127.0.0.1", "[::1]", "192.168.1.20"]
    assert allowed_hosts("0.0.0.0", ["Ml.Example.org", "fe80::1"]) == [
        "localhost", "127.0.0.1", "[::1]", "ml.example.org", "[fe80::1]",
    ]  # fmt: skip
    with pytest.raises(ValueError, match="wildcard"):
        allowed_hosts("127.0.0.1", ["ml.*.org"])


def test_a_request_head_that_never_ends_is_closed(service):
    with running(create_app(service), head_timeout=0.5) as url:
        slow = [_partial_head(url) for _ in range(3)]
        try:
            for sock in slow:
                assert sock.recv(1024) == b""  # closed by the server, not left open for ever
        finally:
            for sock in slow:
                sock.close()
        assert predict_files(url, [("a.png", RED_PNG)])[0] == 200


def test_connections_beyond_the_limit_get_503_not_a_growing_pile(service):
    with running(create_app(service), max_connections=3, head_timeout=120) as url:
        slow = [_partial_head(url) for _ in range(3)]
        try:
            assert _get(url, "/health")[0] == 503
        finally:
            for sock in slow:
                sock.close()
        deadline = time.monotonic() + 30  # the server hears of the closed sockets a moment later
        while _get(url, "/health")[0] != 200:
            assert time.monotonic() < deadline
            time.sleep(0.05)


def test_the_command_starts_uvicorn_with_the_limits_and_the_host_list(tmp_path, helpers, capsys,
                                                                      monkeypatch):  # fmt: skip
    import uvicorn

    from modelkit.cli.main import main

    helpers.write_checkpoint(tmp_path / "run" / "checkpoints" / "best.pt", classes=CLASSES)
    started = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: started.update(app=app, **kw))
    argv = ["serve", str(tmp_path / "run"), "--host", "0.0.0.0", "--device", "cpu",
            "--allowed-host", "ml.example.org", "--max-connections", "7"]  # fmt: skip
    assert main(argv) == 0
    assert started["limit_concurrency"] == 7 and started["timeout_keep_alive"] > 0
    assert started["h11_max_incomplete_event_size"] and started["http"].head_timeout > 0
    assert "ml.example.org" in capsys.readouterr().err
    with running(started["app"]) as url:
        assert _get(url, "/health", "ml.example.org:8000")[0] == 200
        assert _get(url, "/health", "attacker.example")[0] == 400
    assert main([*argv[:-2], "--allowed-host", "a*b"]) == 2
