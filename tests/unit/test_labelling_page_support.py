"""What the Label page needs of the labelling library beyond the command: a map that stays put
while labels are given, the accuracy-vs-labels curve, and the hand-off to training."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from helpers import write_dataset

from modelkit.labelling import layout
from modelkit.labelling.curve import accuracy_curve
from modelkit.labelling.handoff import tidy_for_training, training_problems
from modelkit.labelling.session import Labeller


def _blobs(per_class: int, classes: int = 3, dims: int = 16, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (classes, dims)) * 4
    y = np.repeat(np.arange(classes), per_class)
    return centres[y] + rng.normal(0, 1, (len(y), dims)), y


def test_the_map_is_made_once_for_a_set_of_images_whatever_their_order(tmp_path, monkeypatch):
    x, _ = _blobs(10)
    keys = [f"k{i:02d}" for i in range(len(x))]
    made = []
    real = layout.project
    monkeypatch.setattr(layout, "project", lambda *a, **k: made.append(1) or real(*a, **k))
    first = layout.cached_map(x, keys, tmp_path, "pca")
    order = np.random.default_rng(1).permutation(len(x))  # labelling reorders the rows
    again = layout.cached_map(x[order], [keys[i] for i in order], tmp_path, "pca")
    assert len(made) == 1  # read back, not drawn anew
    assert np.allclose(again, first[order])  # each image keeps its place on the map


def test_the_curve_has_a_point_per_size_the_labels_allow_and_learns(tmp_path):
    x, y = _blobs(12)
    labels = y.copy()
    labels[::4] = -1  # some images unlabelled: never scored
    points = accuracy_curve(x, labels, per_class=(1, 2, 5, 20))
    assert [p.per_class for p in points] == [1, 2, 5]  # 20 a class: more than were given
    assert [p.labels for p in points] == [3, 6, 15]
    assert all(0 <= p.accuracy <= 1 for p in points) and points[-1].accuracy > 0.9
    assert accuracy_curve(x, np.full(len(y), -1)) == []
    one_class = np.where(y == 0, 0, -1)
    assert accuracy_curve(x, one_class) == []  # a curve needs two classes


def test_training_waits_for_two_classes_and_an_empty_unlabelled_folder(tmp_path):
    src = write_dataset(tmp_path / "src", num_classes=2, per_class=2)
    data = tmp_path / "data"
    (data / "unlabelled").mkdir(parents=True)
    for p in sorted(src.rglob("*.png")):
        shutil.copy2(p, data / "unlabelled" / p.name)
    lab = Labeller(data, "pixels")
    problems = " ".join(training_problems(lab.folder))
    assert "two classes" in problems and "unlabelled/ still holds 4 file(s)" in problems
    names = sorted(str(p) for p in (data / "unlabelled").iterdir())
    lab.assign(names[:2], Path(names[0]).name.split("_")[0])
    lab.assign(names[2:3], "extra")
    lab.undo()  # leaves an empty class folder behind
    lab.assign(names[2:], Path(names[2]).name.split("_")[0])
    assert (data / "extra").is_dir() and not any((data / "unlabelled").iterdir())
    folder, problems = tidy_for_training(data)
    assert problems == []
    assert not (data / "unlabelled").exists() and not (data / "extra").exists()
    assert sorted(folder.counts().values()) == [2, 2]
    lab.refresh()
    lab.undo()  # an undo after the tidy makes the folder again
    assert len(list((data / "unlabelled").iterdir())) == 1
    assert any("has 1 image" in p for p in training_problems(lab.folder))
