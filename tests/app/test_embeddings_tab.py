"""AppTest: the Evaluate page's Embeddings tab draws the feature map and runs RSA."""

from __future__ import annotations

import csv
import io


def test_embeddings_tab_map_downloads_and_rsa(open_page, run_dir):
    at = open_page("app_pages/evaluate.py")
    assert not at.exception
    next(t for t in at.toggle if t.key == "embeddings_on").set_value(True).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.get("plotly_chart")
    next(r for r in at.radio if r.key == "embeddings_method").set_value("tsne").run()
    assert not at.exception

    from modelkit.evaluation.embeddings import class_means, compute_embeddings

    names, means = class_means(compute_embeddings(run_dir, "val", device="cpu"))
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["class", "x", "y"])
    for n, m in zip(names, means):
        w.writerow([n, m[0], m[1]])
    next(r for r in at.radio if r.key == "rsa_per").set_value("class")
    csv_file = ("ref.csv", buf.getvalue().encode(), "text/csv")
    at.file_uploader(key="rsa_csv").set_value(csv_file).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    labels = {m.label for m in at.metric}
    assert {"Spearman ρ", "Procrustes disparity", "Items compared"} <= labels
