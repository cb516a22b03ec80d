"""Embeddings: export (CSV, NPY), projections, and RSA against a supplied matrix."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest
import torch

from modelkit.cli.main import main
from modelkit.evaluation.embeddings import (
    class_means,
    compute_embeddings,
    cosine_similarity,
    project,
    read_reference,
    rsa,
)
from modelkit.serving.predictor import Predictor
from studio.search_figures import projection_figure


@pytest.fixture(scope="module")
def emb(trained_run):
    return compute_embeddings(trained_run, "val", device="cpu")


def test_features_are_what_the_head_sees(emb, trained_run):
    assert emb.features.shape == (6, 512) and len(emb.paths) == len(emb.labels) == 6
    predictor = Predictor(trained_run, device="cpu")
    head_logits = predictor.model.fc(torch.from_numpy(emb.features))
    rows = [predictor.preprocess(p) for p in emb.paths]
    assert torch.allclose(head_logits, predictor.logits(rows), atol=1e-4)


def test_cli_exports_csv_and_npy(trained_run, tmp_path, capsys):
    out = tmp_path / "emb.csv"
    assert main(["embeddings", str(trained_run), "--split", "val", "--out", str(out),
                 "--device", "cpu"]) == 0  # fmt: skip
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert len(rows) == 6 and {"path", "label", "class", "f0", "f511"} <= set(rows[0])
    npy = tmp_path / "emb.npy"
    assert main(["embeddings", str(trained_run), "--out", str(npy), "--device", "cpu"]) == 0
    rec = np.load(npy, allow_pickle=False)
    assert rec["features"].shape == (6, 512) and rec["path"][0] == rows[0]["path"]
    assert list(rec["label"]) == [int(r["label"]) for r in rows]
    assert main(["embeddings", str(trained_run), "--out", str(tmp_path / "x.txt")]) == 2
    assert main(["embeddings", str(trained_run), "--split", "test", "--out", str(npy)]) == 1
    assert "no 'test' split" in capsys.readouterr().err


@pytest.mark.parametrize("method", ["pca", "tsne"])
def test_projection_and_its_figure(emb, method):
    coords = project(emb.features, method)
    assert coords.shape == (6, 2) and np.isfinite(coords).all()
    fig = projection_figure(coords, emb, method)
    assert [t.name for t in fig.data] == [c for c in emb.classes if c in set(emb.classes)]
    assert sum(len(t.x) for t in fig.data) == 6
    assert set(fig.data[0].text) <= set(emb.names)


def _csv(names, matrix, header=None):
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["name", *(header or [f"d{i}" for i in range(matrix.shape[1])])])
    for n, row in zip(names, matrix):
        w.writerow([n, *row])
    return buf.getvalue()


def test_rsa_against_the_models_own_geometry_is_perfect(emb):
    sim = cosine_similarity(emb.features)
    ref = read_reference(_csv(emb.names, sim, header=emb.names))
    assert ref.kind == "similarity"
    out = rsa(emb, ref)
    assert out["items"] == 6 and out["spearman_rho"] == pytest.approx(1.0)
    assert out["procrustes_disparity"] < 1e-6

    names, means = class_means(emb)
    coords = read_reference(_csv(names, means[:, :5]).encode())
    assert coords.kind == "coordinates"
    out = rsa(emb, coords, per="class")
    assert out["items"] == 3 and -1 <= out["spearman_rho"] <= 1
    assert 0 <= out["procrustes_disparity"] <= 1


def test_rsa_needs_matching_names(emb):
    ref = read_reference(_csv(["a", "b", "c"], np.eye(3)))
    with pytest.raises(ValueError, match="only 0 of the CSV's 3 names match"):
        rsa(emb, ref)
    with pytest.raises(ValueError, match="numbers"):
        read_reference("name,x\na,hello\nb,1\n")
