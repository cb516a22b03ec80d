"""Dataset page: choose a folder of images and see what training would make of it.

Four ways in (a folder on this machine, an uploaded zip, the bundled digits, CIFAR: their tabs
are in app_pages/_dataset_sources.py); the chosen folder goes to ``st.session_state[DATASET_KEY]``
and the check below is drawn from a cached ``DatasetView``. Everything beyond drawing lives in
modelkit.
"""

from __future__ import annotations

import os
from pathlib import Path

import streamlit as st

from app_pages._dataset_duplicates import duplicates_section
from app_pages._dataset_sources import cifar_tab, folder_tab, sample_tab, upload_tab
from modelkit.data.browse import folder_fingerprint
from modelkit.data.report import build_report
from modelkit.data.scan import scan_dataset
from modelkit.errors import ModelkitError
from modelkit.paths import confine_to
from studio.dataset_view import DatasetView, contact_sheet, counts_bar, dataset_view
from studio.state import DATASET_KEY, remember_dataset, settings
from studio.text import md

THUMB_CLASSES = 12


# ---------------------------------------------------------------- cached work


@st.cache_data(show_spinner="Checking every image (each file is decoded once)…", max_entries=16)
def _check(path: str, fingerprint: str, roots: tuple[Path, ...]) -> DatasetView:
    """The check of ``path``; ``fingerprint`` (unused here) keys the cache to the folder state.

    The scan is confined to the allowed roots: links that lead out are skipped and listed."""
    with confine_to(roots):
        index = scan_dataset(path)
    return dataset_view(index, build_report(index))


@st.cache_data(show_spinner=False, max_entries=512)
def _sheet(paths: tuple[str, ...], fingerprint: str):
    return contact_sheet(list(paths), size=80)


# ---------------------------------------------------------------- the check


def _report_section(path: str) -> None:
    st.subheader(f":material/folder_open: {md(Path(path).name)}")
    st.caption(md(path))
    if not os.path.isdir(path):
        st.error(f"The dataset folder no longer exists: {md(path)}. Choose another one above.")
        return
    fingerprint = folder_fingerprint(path)
    try:
        view = _check(path, fingerprint, settings().allowed_roots)
    except ModelkitError as exc:
        st.error(f"This folder cannot be used as a dataset yet: {md(exc)}")
        return
    report = view.report

    c = st.columns(4)
    c[0].metric("Classes", len(report.classes))
    c[1].metric("Images", f"{view.images:,}")
    c[2].metric("Problems", len(view.problems), help="Listed under Problems below.")
    c[3].metric(
        "Identical files",
        len(view.duplicates),
        help="Groups of byte-identical files, listed under Identical files below.",
    )
    _verdict(view)

    left, right = st.columns([3, 2], gap="large")
    with left:
        st.markdown("##### Images per class and split")
        st.plotly_chart(counts_bar(report.counts), width="stretch", key="ds_counts_chart")
    with right:
        st.markdown("##### Image sizes (pixels)")
        st.dataframe(view.sizes, hide_index=True, width="stretch", key="ds_sizes")
        st.caption("Every image is resized for training, so mixed sizes are fine.")
        with st.expander(f"Counts per class ({len(report.classes)} classes)"):
            st.dataframe(view.counts, hide_index=True, width="stretch", key="ds_counts_table")

    st.markdown("##### Split")
    st.caption(md(view.split_text))
    st.dataframe(
        view.splits,
        hide_index=True,
        width="stretch",
        key="ds_splits",
        column_config={"examples": st.column_config.TextColumn("example files", width="large")},
    )

    _problems(view)
    duplicates_section(view)
    _samples(view, fingerprint)

    if view.skipped:
        with st.expander(f"{len(view.skipped):,} file(s) skipped because they are not images"):
            st.dataframe({"file": view.skipped[:500]}, hide_index=True, width="stretch")
            if len(view.skipped) > 500:
                st.caption(f"…and {len(view.skipped) - 500:,} more.")

    st.button("Check again", key="ds_recheck", on_click=_check.clear, help="Re-read every file.")
    st.divider()
    st.page_link(
        "app_pages/train.py",
        label="Train a model on this dataset →",
        icon=":material/model_training:",
    )


def _verdict(view: DatasetView) -> None:
    """One sentence over the check, counting what the sections below list, under their names."""
    leaks = len(view.report.leaks)
    parts = []
    if view.problems:
        parts.append(f"{len(view.problems)} problem(s) (listed under Problems)")
    if leaks:
        parts.append(
            f"{leaks} group(s) of identical files across classes or splits (listed under "
            "Identical files, with a button that removes the extra copies)"
        )
    if parts:
        st.warning(
            f"{' and '.join(parts)} to fix before training. Fixing them first gives a model and "
            "a validation score you can trust."
        )
    else:
        st.success(
            "No problems found: every file decodes and no file appears twice across "
            "classes or splits."
        )


def _problems(view: DatasetView) -> None:
    st.markdown(f"##### Problems ({len(view.problems)})")
    if not view.problems:
        st.caption("Every file decodes and every class has images in every split.")
        return
    st.dataframe(
        view.problems,
        hide_index=True,
        width="stretch",
        key="ds_problems",
        column_config={"file": st.column_config.TextColumn("file", width="large")},
    )


def _samples(view: DatasetView, fingerprint: str) -> None:
    st.markdown("##### A few images per class")
    classes = list(view.samples)
    if len(classes) > THUMB_CLASSES and not st.toggle(
        f"Show all {len(classes)} classes", key="ds_all_thumbs"
    ):
        classes = classes[:THUMB_CLASSES]
    cols = st.columns(4)
    for n, cls in enumerate(classes):
        sheet = _sheet(tuple(view.samples[cls]), fingerprint)
        with cols[n % 4]:
            if sheet is None:
                st.caption(f"**{md(cls)}**: no readable images")
            else:
                st.image(sheet, caption=md(cls))


# ---------------------------------------------------------------- page


def main() -> None:
    cfg = settings()
    refused = remember_dataset()
    st.header("Dataset")
    if refused:
        st.warning(md(refused))
    st.caption(
        "Pick a folder of images: one sub-folder per class (cats/, dogs/, ...), or train/ with "
        "val/ and/or test/ folders that each hold the class folders (without val/, validation "
        "images are drawn from train/). The check below decodes every file once and "
        "tells you what to fix before training."
    )
    tabs = st.tabs(
        [
            ":material/folder: Folder",
            ":material/upload: Upload a zip",
            ":material/science: Sample dataset",
            ":material/public: CIFAR",
        ]
    )
    with tabs[0]:
        folder_tab(cfg.allowed_roots)
    with tabs[1]:
        upload_tab(cfg.data_dir / "uploads")
    with tabs[2]:
        sample_tab(cfg.data_dir)
    with tabs[3]:
        cifar_tab(cfg.data_dir)

    st.divider()
    path = st.session_state.get(DATASET_KEY)
    if not path:
        st.info("No dataset chosen yet. Pick a folder above, or try the sample dataset.")
        return
    _report_section(path)


main()
