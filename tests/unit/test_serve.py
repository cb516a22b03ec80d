"""``modelkit serve``: predictions over HTTP, batching of requests that arrive together, and
hostile bodies that each get a 4xx while the server keeps answering."""

from __future__ import annotations

import io
import json
import struct
import threading
import time
import urllib.request
import zipfile
import zlib

import pytest
from helpers import free_port, png_bytes
from PIL import Image

from modelkit.serving.batching import DynamicBatcher
from modelkit.serving.http_client import post, predict_files
from modelkit.serving.predictor import Predictor
from modelkit.serving.server import PredictionService, create_app, running

CLASSES = ["red", "green", "blue"]


# a red 40x48 PNG: what every request here sends
RED_PNG = png_bytes((200, 30, 30), (40, 48))


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


def jpeg_bytes(size=(64, 64)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (10, 120, 200)).save(buf, "JPEG")
    return buf.getvalue()


def bomb_png(side: int = 20_000) -> bytes:
    """A valid PNG header announcing side x side pixels whose pixel data is a tiny zlib bomb."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)  # 8-bit greyscale
    row = b"\x00" + b"\x00" * side
    comp = zlib.compressobj(9)
    data = b"".join(comp.compress(row) for _ in range(200)) + comp.flush()
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")
    )


def zip_bomb() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("big.bin", b"\x00" * 20_000_000)
    return buf.getvalue()


@pytest.fixture(scope="module")
def server(tmp_path_factory, helpers):
    ckpt = helpers.write_checkpoint(
        tmp_path_factory.mktemp("serve") / "run-1" / "checkpoints" / "best.pt", classes=CLASSES
    )
    predictor = Predictor(ckpt, device="cpu")
    service = PredictionService(
        predictor, max_batch=8, max_wait_s=0.2, max_body_bytes=2_000_000, top_k=2
    )
    with running(create_app(service)) as url:
        yield url, service, predictor


def test_model_and_health_describe_the_run(server):
    url, _, _ = server
    info = get_json(f"{url}/model")
    assert info["classes"] == CLASSES
    assert info["architecture"] == "resnet18" and info["input_size"] == 32
    assert info["run_id"] == "run-1" and info["backend"] == "pytorch"
    assert get_json(f"{url}/health")["status"] == "ok"


def test_predict_matches_the_predictor_for_one_and_many_images(server):
    url, _, predictor = server
    images = [("a.png", RED_PNG), ("b.jpg", jpeg_bytes())]
    status, answer = predict_files(url, images, top_k=3)
    assert status == 200
    got = answer["predictions"]
    assert [p["labels"] for p in got] == [
        predictor.predict(io.BytesIO(data), top_k=3).labels for _, data in images
    ]
    for p, (_, data) in zip(got, images):
        expected = predictor.predict(io.BytesIO(data), top_k=3).probabilities
        assert p["probabilities"] == pytest.approx(expected, abs=1e-5)
    status, answer = predict_files(url, images[:1])
    assert status == 200 and len(answer["predictions"][0]["labels"]) == 2  # the server's top_k


def test_requests_arriving_together_share_a_batch(server):
    url, service, _ = server
    before = service.batcher.stats()["batch_sizes"]
    statuses: list[int] = []
    gate = threading.Barrier(6)

    def client():
        gate.wait()
        statuses.append(predict_files(url, [("x.png", RED_PNG)])[0])

    threads = [threading.Thread(target=client) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [200] * 6
    after = get_json(f"{url}/health")["batch_sizes"]
    new = {int(k): v - before.get(int(k), 0) for k, v in after.items()}
    assert sum(size * n for size, n in new.items()) == 6
    assert max(size for size, n in new.items() if n) > 1, new


HOSTILE = {
    "empty body": (b"", "application/octet-stream"),
    "text": (b"hello, I am not an image", "text/plain"),
    "truncated jpeg": (jpeg_bytes((256, 256))[:-400], "image/jpeg"),
    "zip bomb named .png": ("multipart", ("bomb.png", zip_bomb())),
    "decompression bomb png": ("multipart", ("huge.png", bomb_png(10_000))),
    "giant png header": ("multipart", ("giant.png", bomb_png(20_000))),
    "huge body": (b"\x00" * 3_000_000, "image/png"),
    "empty multipart": ("multipart", ("empty.png", b"")),
    "malformed multipart": (b"--x\r\nnonsense", "multipart/form-data; boundary=x"),
}


EXPECTED = {  # what the message must say, where it can be specific
    "empty multipart": "empty.png: the file is empty",
    "zip bomb named .png": "bomb.png: not an image",
    "decompression bomb png": "huge.png: image is too large",
    "giant png header": "giant.png: image is too large",
    "truncated jpeg": "truncated",
    "huge body": "limit",
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_bodies_get_a_4xx_and_the_server_keeps_serving(server, case):
    from modelkit.serving.http_client import encode_multipart

    url, _, _ = server
    body, kind = HOSTILE[case]
    if body == "multipart":
        body, kind = encode_multipart([kind])
    try:
        status, answer = post(f"{url}/predict", body, kind)
    except OSError:  # the server may close before reading a body it already refused
        status, answer = 413, {"error": "connection closed"}
    assert 400 <= status < 500, (case, status, answer)
    assert EXPECTED.get(case, "") in answer["error"], answer
    status, answer = predict_files(url, [("ok.png", RED_PNG)])
    assert status == 200 and answer["predictions"][0]["labels"]


def test_bad_top_k_is_a_400_naming_the_range(server):
    url, _, _ = server
    status, answer = predict_files(url, [("a.png", RED_PNG)], top_k=9)
    assert status == 400 and "top_k" in answer["error"] and "1 to 3" in answer["error"]


def test_batcher_fills_batches_up_to_the_maximum_and_passes_errors_on():
    seen: list[int] = []

    def double(items):
        seen.append(len(items))
        if "boom" in items:
            raise ValueError("boom")
        time.sleep(0.01)
        return [i * 2 for i in items]

    batcher = DynamicBatcher(double, max_batch=4, max_wait_s=0.5)
    futures = [batcher.submit(i) for i in range(10)]
    assert [f.result(timeout=10) for f in futures] == [i * 2 for i in range(10)]
    assert max(seen) == 4 and sum(seen) == 10
    failing = batcher.submit("boom")
    with pytest.raises(ValueError, match="boom"):
        failing.result(timeout=10)
    assert batcher.submit(5).result(timeout=10) == 10  # the worker survived
    batcher.close()


def test_modelkit_serve_listens_on_localhost_and_answers(tmp_path, helpers):
    import os
    import subprocess
    import sys
    from pathlib import Path

    run = tmp_path / "run-cli"
    helpers.write_checkpoint(run / "checkpoints" / "best.pt", classes=CLASSES)
    port = free_port()
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": root}
    cmd = [sys.executable, "-m", "modelkit", "serve", str(run), "--port", str(port), "--device",
           "cpu", "--log-level", "warning"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, proc.stderr.read()
            try:
                info = get_json(f"http://127.0.0.1:{port}/model")
                break
            except OSError:
                assert time.monotonic() < deadline, "the server never answered"
                time.sleep(0.3)
        assert info["run_id"] == "run-cli" and info["classes"] == CLASSES
        status, answer = predict_files(f"http://127.0.0.1:{port}", [("a.png", RED_PNG)])
        assert status == 200 and len(answer["predictions"]) == 1
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert "serving run-cli (resnet18, 3 classes) on http://127.0.0.1:" in proc.stderr.read()


def test_serve_refuses_a_missing_run_with_one_line(tmp_path, capsys):
    from modelkit.cli.main import main

    assert main(["serve", str(tmp_path / "nope")]) == 1
    assert capsys.readouterr().err.startswith("error: ")


def test_a_chunked_body_over_the_limit_gets_413(server):
    import http.client
    from urllib.parse import urlsplit

    url, _, _ = server
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    chunks = (b"\x00" * 100_000 for _ in range(30))  # 3 MB, no Content-Length
    conn.request("POST", "/predict", body=chunks, headers={"Content-Type": "image/png"},
                 encode_chunked=True)  # fmt: skip
    response = conn.getresponse()
    assert response.status == 413 and b"over the limit" in response.read()
    conn.close()
    assert predict_files(url, [("ok.png", RED_PNG)])[0] == 200
