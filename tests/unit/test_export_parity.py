"""The parity table: what an export is judged by, measured on stand-in models over tiny images."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from modelkit.serving import parity
from modelkit.serving.export_inputs import LabelledImages, split_images

CLASSES = ["red", "green", "blue"]
COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}
PAYLOAD = {
    "classes": CLASSES,
    "preprocess": {"image_size": 8, "resize_size": 10, "mean": [0, 0, 0], "std": [1, 1, 1]},
}


@pytest.fixture
def images(tmp_path) -> LabelledImages:
    """Four images of each colour, labelled with its class index."""
    paths, labels = [], []
    for index, name in enumerate(CLASSES):
        for i in range(4):
            path = tmp_path / f"{name}_{i}.png"
            Image.new("RGB", (12, 12), COLOURS[name]).save(path)
            paths.append(str(path))
            labels.append(index)
    return LabelledImages(paths, labels, "val")


def colour_model(x: np.ndarray) -> np.ndarray:
    """A perfect 'model' of the three colours: logits are the channel means."""
    return 10 * x.mean(axis=(2, 3))


def blind_to_blue(x: np.ndarray) -> np.ndarray:
    """The same, but it answers green where the image is blue: a damaged export."""
    logits = colour_model(x)
    blue = logits.argmax(1) == 2
    logits[blue, 1] = logits[blue, 2] + 1
    return logits


def test_an_identical_export_agrees_everywhere_and_loses_nothing(images):
    table, sample = parity.compare(colour_model, colour_model, PAYLOAD, images)
    s = table["summary"]
    assert s["verified_on"] == "12 val images" and s["images"] == 12
    assert s["top1_agreement"] == 1.0
    assert s["accuracy_pytorch"] == s["accuracy_export"] == 1.0
    assert s["accuracy_change"] == 0.0 and s["max_probability_diff"] == 0.0
    assert [r["class"] for r in table["per_class"]] == CLASSES
    assert parity.accuracy_drop_points(table) == 0.0
    assert sample.shape == (12, 3, 8, 8)


def test_a_class_the_export_lost_shows_in_its_row_and_in_the_drop(images):
    table, _ = parity.compare(colour_model, blind_to_blue, PAYLOAD, images)
    rows = {r["class"]: r for r in table["per_class"]}
    assert rows["blue"]["accuracy_export"] == 0.0 and rows["blue"]["change"] == -1.0
    assert rows["red"]["change"] == rows["green"]["change"] == 0.0
    assert table["summary"]["top1_agreement"] == pytest.approx(8 / 12)
    assert parity.accuracy_drop_points(table) == pytest.approx(100 / 3)
    text = parity.format_table("onnx-int8", table)
    assert "classes that lost most:" in text and "blue: 100.0% -> 0.0% (4 images)" in text
    assert "(-33.3 points)" in text


def test_unreadable_images_are_skipped_and_none_readable_falls_back_to_random_pixels(
    images, tmp_path
):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    with_broken = LabelledImages([str(broken), *images.paths], [0, *images.labels], "val")
    table, _ = parity.compare(colour_model, colour_model, PAYLOAD, with_broken)
    assert table["summary"]["images"] == 12

    none = LabelledImages([str(broken)], [0], "val")
    table, _ = parity.compare(colour_model, blind_to_blue, PAYLOAD, none)
    assert table["summary"]["verified_on"] == "16 random images"
    assert table["summary"]["accuracy_export"] is None and table["per_class"] == []
    assert parity.accuracy_drop_points(table) == 0.0
    assert "accuracy               n/a -> n/a" in parity.format_table("onnx", table)


def test_measure_adds_size_and_speed_of_both_models(images):
    table = parity.measure(colour_model, colour_model, PAYLOAD, images, 1234, timing=True)
    s = table["summary"]
    assert s["file_bytes"] == 1234
    for key in ("latency_ms_batch1", "throughput_batch32", "pytorch_latency_ms_batch1"):
        assert s[key] > 0
    assert "throughput, batch 32" in parity.format_table("onnx", table)
    untimed = parity.measure(colour_model, colour_model, PAYLOAD, images, 1, timing=False)
    assert "latency_ms_batch1" not in untimed["summary"]


def test_split_images_spreads_a_limit_over_the_whole_list(tmp_path):
    import json

    rows = [[f"/{c}/{i}.png", k] for k, c in enumerate(CLASSES) for i in range(10)]
    (tmp_path / "splits.json").write_text(json.dumps({"val": rows + [["bad"], [3, 1]]}))
    picked = split_images(tmp_path, "val", limit=6)
    assert sorted(set(picked.labels)) == [0, 1, 2]  # every class, not the first one's images
    assert len(picked.paths) == 6
    assert split_images(tmp_path, "test").paths == []
