"""The Evaluate page's Embeddings tab: a 2-D map of the model's features, their export, and a
representational similarity analysis against a matrix a person uploads. Numbers and figures
come from modelkit.evaluation.embeddings."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import streamlit as st

from modelkit.evaluation.embeddings import (
    compute_embeddings,
    project,
    read_reference,
    rsa,
    to_csv,
    to_records,
)
from modelkit.runs.folder import RunFolder, stamp
from modelkit.runs.store import RunInfo
from studio.search_figures import projection_figure
from studio.text import md


def _checkpoint_stamp(run_dir: Path) -> int:
    saved = RunFolder(run_dir).saved_checkpoint()
    return stamp(saved)[0] if saved else 0


@st.cache_data(max_entries=8, show_spinner=False)
def _embeddings(run_dir: str, split: str, stamp: int):
    return compute_embeddings(run_dir, split)


@st.cache_data(max_entries=16, show_spinner=False)
def _projection(run_dir: str, split: str, stamp: int, method: str) -> np.ndarray:
    return project(_embeddings(run_dir, split, stamp).features, method)


def embeddings_tab(run: RunInfo, split: str) -> None:
    # computed on request: tabs all render on every run, and this one decodes a whole split
    if not st.toggle("Compute the features of this split", key="embeddings_on"):
        st.caption(
            "What the model sees in each image (the features of its last layer but one): a 2-D "
            "map, CSV/NPY export, and a comparison with similarities you measured yourself "
            "(representational similarity analysis, RSA)."
        )
        return
    stamp = _checkpoint_stamp(run.path)
    with st.spinner("Computing the features of every image…"):
        try:
            emb = _embeddings(str(run.path), split, stamp)
        except (RuntimeError, OSError, ValueError) as exc:
            st.error(f"Could not compute the features: {md(exc)}")
            return
    n, d = emb.features.shape
    c1, c2, c3 = st.columns([2, 1, 1], vertical_alignment="bottom")
    method = c1.radio(
        "Projection", ["pca", "tsne"], horizontal=True, key="embeddings_method",
        format_func={"pca": "PCA", "tsne": "t-SNE"}.get,
        help="PCA keeps the largest directions of variation; t-SNE keeps neighbours together.",
    )  # fmt: skip
    c2.download_button(
        "CSV", to_csv(emb), f"{run.id}-{split}-embeddings.csv", "text/csv",
        icon=":material/download:", key="embeddings_csv",
    )  # fmt: skip
    buf = io.BytesIO()
    np.save(buf, to_records(emb), allow_pickle=False)
    c3.download_button(
        "NPY", buf.getvalue(), f"{run.id}-{split}-embeddings.npy", "application/octet-stream",
        icon=":material/download:", key="embeddings_npy",
    )  # fmt: skip
    with st.spinner("Projecting…"):
        coords = _projection(str(run.path), split, stamp, method)
    title = f"{n} images, {d} features each, by {'PCA' if method == 'pca' else 't-SNE'}"
    st.plotly_chart(projection_figure(coords, emb, title), key="embeddings_plot")

    st.markdown(
        "##### Compare with your own similarities",
        help="Representational similarity analysis (RSA): do the images (or classes) the model "
        "finds alike match the ones your own measurements find alike?",
    )
    st.caption(
        "A CSV whose first column names an image (file name) or a class, followed by either a "
        "square similarity matrix (header: the same names) or coordinates (any number of "
        "columns). Reported: how well the two agree on which pairs are alike, and how different "
        "the two maps' shapes are (0 = the same shape)."
    )
    c1, c2 = st.columns([3, 1])
    upload = c1.file_uploader("Similarity or coordinates CSV", type=["csv"], key="rsa_csv")
    per = c2.radio("One row per", ["image", "class"], key="rsa_per")
    if upload is None:
        return
    try:
        result = rsa(emb, read_reference(upload.getvalue()), per)
    except ValueError as exc:
        st.error(md(exc))
        return
    m1, m2, m3 = st.columns(3)
    m1.metric(
        "Spearman ρ", f"{result['spearman_rho']:.3f}",
        help="Agreement on which pairs are alike (rank correlation of the pairwise "
        f"similarities): 1 = the same order, 0 = unrelated. p = {result['spearman_p']:.3g}",
    )  # fmt: skip
    m2.metric(
        "Procrustes disparity", f"{result['procrustes_disparity']:.3f}",
        help="How different the two maps' shapes are once one is shifted, scaled and rotated "
        "onto the other: 0 = the same shape, 1 = nothing in common.",
    )  # fmt: skip
    m3.metric("Items compared", result["items"], help=f"{result['unmatched']} names not found")
    st.caption(f"The CSV was read as {result['kind']}.")
