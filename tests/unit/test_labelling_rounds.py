"""A suggestion round after a label reuses what the round before computed: the label moves a
file, not its pixels, so each image keeps its features and the projection is not made again."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from helpers import write_dataset

from modelkit.labelling import session
from modelkit.labelling.session import Labeller


def test_a_label_keeps_each_image_s_features_without_projecting_again(tmp_path, monkeypatch):
    src = write_dataset(tmp_path / "src", num_classes=3, per_class=6)
    data = tmp_path / "data"
    (data / "unlabelled").mkdir(parents=True)
    for p in sorted(src.rglob("*.png")):
        shutil.copy2(p, data / "unlabelled" / p.name)
    lab = Labeller(data, "pixels")
    first = lab.suggest(4)
    before = {Path(p).name: v for p, v in zip(lab.table().paths, lab._normalised())}

    projections = []
    real = session.reduce
    monkeypatch.setattr(session, "reduce", lambda f: projections.append(1) or real(f))
    lab.assign([first.asks[0]["path"]], "red")
    lab.suggest(4)
    after = {Path(p).name: v for p, v in zip(lab.table().paths, lab._normalised())}
    assert projections == []  # the moved file is the same image: nothing is projected again
    assert sorted(after) == sorted(before)
    assert all(np.array_equal(after[name], before[name]) for name in before)

    (data / "unlabelled" / "extra.png").write_bytes((src / "red" / "red_00.png").read_bytes())
    lab.refresh()
    lab.suggest(4)
    assert projections == [1]  # a new photo changes the set: projected afresh, once
