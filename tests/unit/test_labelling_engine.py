"""Which engine runs the bundled backbone's forward pass when a folder is embedded: OpenVINO on a
CPU (about ten times PyTorch's speed there), PyTorch when OpenVINO cannot, the same features
either way."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import write_dataset

from modelkit.labelling import backbone
from modelkit.labelling.embed import StoreError, embed_folder_images

pytest.importorskip("openvino")


def photos(tmp_path: Path) -> list[str]:
    src = write_dataset(tmp_path / "src", num_classes=3, per_class=4)  # 12: two batches
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for p in sorted(src.rglob("*.png")):
        shutil.copy2(p, inbox / p.name)
    return [str(p) for p in sorted(inbox.iterdir())]


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_openvino_and_pytorch_give_the_same_features(tmp_path):
    paths = photos(tmp_path)
    fast = embed_folder_images(paths, tmp_path / "a", "pretrained", "cpu", engine="openvino")
    slow = embed_folder_images(paths, tmp_path / "b", "pretrained", "cpu", engine="pytorch")
    assert fast.features.shape == slow.features.shape == (12, 1280)
    assert fast.paths == slow.paths == paths
    assert cosine(fast.features, slow.features).min() > 0.99  # bf16 both ways: not bit-equal
    # under both engines each photo's nearest other photo is one of its own class
    cls = np.repeat(np.arange(3), 4)  # paths are sorted: blue_*, green_*, red_*
    for f in (fast.features, slow.features):
        f = f / np.linalg.norm(f, axis=1, keepdims=True)
        assert np.array_equal(cls[(f @ f.T - 2 * np.eye(12)).argmax(1)], cls)


def test_a_model_openvino_cannot_take_falls_back_to_pytorch(tmp_path, monkeypatch):
    def refuse(*_args):
        raise RuntimeError("this conversion fails")

    monkeypatch.setattr(backbone, "_convert", refuse)
    backbone.bundled.cache_clear()
    paths = photos(tmp_path)
    try:
        table = embed_folder_images(paths, tmp_path / "a", "pretrained", "cpu")
        assert table.features.shape == (12, 1280) and table.embedded == 12
        with pytest.raises(StoreError, match="OpenVINO"):
            embed_folder_images(paths, tmp_path / "b", "pretrained", "cpu", engine="openvino")
    finally:
        backbone.bundled.cache_clear()  # the next test converts afresh


def test_an_unknown_engine_is_refused_with_the_choices(tmp_path):
    with pytest.raises(StoreError, match="openvino, pytorch"):
        embed_folder_images(photos(tmp_path), tmp_path / "a", "pretrained", "cpu", engine="onnx")
