"""Dataset page: choose a folder of images and see what training would make of it.

Four ways in (a folder on this machine, an uploaded zip, the bundled digits, CIFAR); the chosen
folder goes to ``st.session_state[DATASET_KEY]`` and the check below is drawn from a cached
``DatasetView``. Everything beyond drawing lives in modelkit.
"""

from __future__ import annotations

import os
from pathlib import Path

import streamlit as st

from modelkit.data.archive import ArchiveError
from modelkit.data.browse import (
    BrowseError,
    folder_fingerprint,
    list_subfolders,
    looks_like_dataset,
    open_folder,
    parent_within,
)
from modelkit.data.builtin import (
    BUILTIN_DATASETS,
    DatasetDownloadError,
    builtin_dir,
    download_cache_dir,
    is_exported,
    prepare_builtin_dataset,
)
from modelkit.data.report import build_report
from modelkit.data.samples import default_digits_dir, make_digits_dataset
from modelkit.data.scan import scan_dataset
from modelkit.data.uploads import delete_upload, list_uploads, unpack_upload, upload_quota
from modelkit.errors import ModelkitError
from modelkit.paths import confine_to
from studio.dataset_view import DatasetView, contact_sheet, counts_bar, dataset_view
from studio.state import DATASET_KEY, settings
from studio.text import md

BROWSE_KEY = "ds_browse_dir"  # folder shown in the browser; None = list of allowed roots
PATH_INPUT_KEY = "ds_path_input"
UPLOADS_KEY = "ds_uploads"  # {uploaded file_id: dataset path or error text}
DELETE_UPLOAD_KEY = "ds_upload_delete_pending"  # upload folder awaiting a yes
MAX_BUTTONS = 48
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


# ---------------------------------------------------------------- choosing


def _choose(path: str | os.PathLike) -> None:
    st.session_state[DATASET_KEY] = str(path)


def _browse_to(path: str | None) -> None:
    """Button callback: show ``path`` in the browser and in the path box."""
    st.session_state[BROWSE_KEY] = path
    if path is not None:
        st.session_state[PATH_INPUT_KEY] = path


def _use_folder(path: str) -> None:
    _choose(path)
    st.session_state[PATH_INPUT_KEY] = path


def _folder_tab(roots: tuple[Path, ...]) -> None:
    if PATH_INPUT_KEY not in st.session_state:
        st.session_state[PATH_INPUT_KEY] = st.session_state.get(DATASET_KEY) or ""
    col_in, col_btn = st.columns([5, 1], vertical_alignment="bottom")
    typed = col_in.text_input(
        "Dataset folder",
        key=PATH_INPUT_KEY,
        placeholder="/path/to/photos (one sub-folder per class, or train/ with val/ or test/)",
    )
    if col_btn.button("Open", key="ds_open_path", width="stretch"):
        try:
            real = open_folder(typed, roots)
        except BrowseError as exc:
            st.error(f"Cannot use that folder: {md(exc)}")
        else:
            _choose(real)
            st.session_state[BROWSE_KEY] = str(real)

    st.markdown("**Or browse the folders on this machine**")
    if BROWSE_KEY not in st.session_state:
        st.session_state[BROWSE_KEY] = str(roots[0]) if len(roots) == 1 else None
    here = st.session_state[BROWSE_KEY]
    if here is None:
        st.caption("Folders this app may open:")
        _folder_buttons([str(r) for r in roots], full_names=True)
        return
    try:
        subfolders = list_subfolders(here, roots)
        up = parent_within(here, roots)
    except BrowseError as exc:
        st.error(md(exc))
        st.button("Back to the top", key="ds_browse_reset", on_click=_browse_to, args=(None,))
        return

    hint = looks_like_dataset(here)
    st.markdown(
        f":material/folder_open: {md(here)}"
        + (f" — looks like a dataset: *{hint}*" if hint else "")
    )
    c1, c2, _ = st.columns([1, 2, 3])
    at_top = up is None and len(roots) == 1
    c1.button(
        ":material/arrow_upward: Up",
        key="ds_browse_up",
        disabled=at_top,
        on_click=_browse_to,
        args=(str(up) if up else None,),
        width="stretch",
    )
    c2.button(
        ":material/check: Use this folder",
        key="ds_browse_use",
        type="primary" if hint else "secondary",
        on_click=_use_folder,
        args=(here,),
        width="stretch",
    )
    if subfolders:
        _folder_buttons([str(p) for p in subfolders])
    else:
        st.caption("No sub-folders here.")


def _folder_buttons(paths: list[str], full_names: bool = False) -> None:
    cols = st.columns(4)
    for n, path in enumerate(paths[:MAX_BUTTONS]):
        label = f":material/folder: {md(path if full_names else Path(path).name)}"
        cols[n % 4].button(
            label, key=f"ds_browse_{n}", on_click=_browse_to, args=(path,), width="stretch"
        )
    if len(paths) > MAX_BUTTONS:
        st.caption(f"…and {len(paths) - MAX_BUTTONS} more: type the path above to open one.")


def _upload_tab(uploads_dir: Path) -> None:
    uploaded = st.file_uploader(
        "Drop a .zip of your dataset",
        type=["zip"],
        key="ds_zip",
        help="Inside the zip: one folder per class, or train/ with val/ and/or test/ folders of "
        "class folders.",
    )
    st.caption(f"Zips are unpacked (safely) into {md(uploads_dir)}; the same zip twice is reused.")
    if uploaded is not None:
        done: dict = st.session_state.setdefault(UPLOADS_KEY, {})
        if uploaded.file_id not in done:
            with st.spinner(f"Unpacking {md(uploaded.name)}…"):
                try:
                    root, reused = unpack_upload(uploaded, uploads_dir)
                except (ArchiveError, OSError) as exc:
                    done[uploaded.file_id] = ("error", str(exc))
                else:
                    done[uploaded.file_id] = ("reused" if reused else "ok", str(root))
                    _choose(root)
        kind, text = done[uploaded.file_id]
        if kind == "error":
            st.error(f"Cannot use {md(uploaded.name)}: {md(text)}")
        elif kind == "reused":
            st.success(f"{md(uploaded.name)} was uploaded before: using {md(text)}.")
        else:
            st.success(f"Unpacked {md(uploaded.name)} into {md(text)}.")
    _uploads_list(uploads_dir)


def _uploads_list(uploads_dir: Path) -> None:
    """Earlier uploads with their sizes against the quota; one can be deleted after a yes."""
    uploads = list_uploads(uploads_dir)
    if not uploads:
        return
    used = sum(u.bytes for u in uploads)
    with st.expander(
        f"Earlier uploads: {len(uploads)}, {used / 2**30:.2f} of {upload_quota() / 2**30:.0f} GiB"
    ):
        st.dataframe(
            [{"folder": u.name, "MB": round(u.bytes / 2**20, 1)} for u in uploads],
            hide_index=True,
            key="ds_uploads_table",
        )
        names = [u.name for u in uploads]
        pick, go = st.columns([3, 1], vertical_alignment="bottom")
        name = pick.selectbox("Upload to delete", names, key="ds_upload_pick")
        if go.button("Delete…", key="ds_upload_delete"):
            st.session_state[DELETE_UPLOAD_KEY] = name
        if st.session_state.get(DELETE_UPLOAD_KEY) == name:
            st.warning(
                f"Delete the unpacked folder **{md(uploads_dir / name)}**? Your zip file is not "
                "touched; you can upload it again."
            )
            yes, no, _ = st.columns([1, 1, 3])
            if yes.button("Yes, delete it", type="primary", key="ds_upload_delete_confirm"):
                st.session_state.pop(DELETE_UPLOAD_KEY, None)
                try:
                    delete_upload(uploads_dir, name)
                except (ModelkitError, OSError) as exc:
                    st.error(f"Could not delete {md(name)}: {md(exc)}")
                else:
                    if st.session_state.get(DATASET_KEY, "").startswith(str(uploads_dir / name)):
                        st.session_state.pop(DATASET_KEY, None)
                    st.session_state.pop(UPLOADS_KEY, None)
                    st.rerun()
            if no.button("Cancel", key="ds_upload_delete_cancel"):
                st.session_state.pop(DELETE_UPLOAD_KEY, None)
                st.rerun()


def _sample_tab(data_dir: Path) -> None:
    st.markdown(
        "**Handwritten digits**: 1,797 small pictures of the digits 0 to 9 (ten classes), made "
        "from the sample data that ships with scikit-learn. Nothing is downloaded; the images are "
        "written on this machine the first time."
    )
    if st.button("Use the bundled sample dataset", key="ds_sample", type="primary"):
        with st.spinner("Writing the digit images…"):
            path = make_digits_dataset(default_digits_dir(data_dir))
        _choose(path)


def _cifar_tab(data_dir: Path) -> None:
    key = st.radio(
        "Dataset",
        list(BUILTIN_DATASETS),
        format_func=lambda k: BUILTIN_DATASETS[k].title,
        horizontal=True,
        key="ds_builtin",
    )
    spec = BUILTIN_DATASETS[key]
    st.caption(spec.description)
    limit = st.selectbox(
        "How much of it",
        [0, 1000, 100],
        format_func=lambda n: f"{n} training images per class" if n else "everything",
        key="ds_builtin_limit",
    )
    limit = limit or None
    dest = builtin_dir(data_dir, key, limit)
    cache = download_cache_dir(data_dir)
    ready = is_exported(dest)
    label = f"Use {spec.title}"
    if not ready:
        label = f"Download {spec.title} ({spec.size_mb} MB) and use it"
    if not st.button(label, key="ds_builtin_go"):
        return
    error = None
    with st.status(f"Preparing {spec.title}…", expanded=True) as status:
        if not ready:
            st.write(f"Fetching {spec.archive} into `{cache}` (skipped when it is already there).")
        bar = st.progress(0.0, text="Waiting for the download…")

        def progress(done: int, total: int) -> None:
            bar.progress(done / max(total, 1), text=f"Writing images {done:,}/{total:,}")

        try:
            path = prepare_builtin_dataset(key, dest, cache, limit, progress=progress)
        except DatasetDownloadError as exc:
            error = str(exc)
            status.update(label=f"{spec.title} is not available", state="error", expanded=False)
        else:
            status.update(label=f"{spec.title} is ready", state="complete", expanded=False)
    if error:
        st.error(error)
    else:
        _choose(path)


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

    problems = report.problems
    leaks = sum(1 for g in report.duplicates if g["cross_class"] or g["cross_split"])
    c = st.columns(4)
    c[0].metric("Classes", len(report.classes))
    c[1].metric("Images", f"{view.images:,}")
    c[2].metric("Problems", len(problems))
    c[3].metric("Identical across class/split", leaks)

    if problems:
        st.warning(
            f"{len(problems)} thing(s) to fix before training; they are listed below. "
            "Fixing them first gives a model and a validation score you can trust."
        )
    else:
        st.success(
            "No problems found: every file decodes and no file appears twice across "
            "classes or splits."
        )

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
    _duplicates(view)
    _samples(view, fingerprint)

    if view.skipped:
        with st.expander(f"{len(view.skipped):,} file(s) skipped because they are not images"):
            st.dataframe({"file": view.skipped[:500]}, hide_index=True, width="stretch")
            if len(view.skipped) > 500:
                st.caption(f"…and {len(view.skipped) - 500:,} more.")

    st.button("Check again", key="ds_recheck", on_click=_check.clear, help="Re-read every file.")
    st.divider()
    st.page_link(
        "pages/train.py", label="Train a model on this dataset →", icon=":material/model_training:"
    )


def _problems(view: DatasetView) -> None:
    st.markdown("##### Problems")
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


def _duplicates(view: DatasetView) -> None:
    st.markdown("##### Identical files")
    if not view.duplicates:
        st.caption("No two files are identical.")
        return
    st.caption(
        "Identical files with different labels confuse the model; the same file in train and val "
        "makes the validation score look better than it is. Keep one copy."
    )
    st.dataframe(
        view.duplicates,
        hide_index=True,
        width="stretch",
        key="ds_duplicates",
        column_config={
            "cross_class": st.column_config.CheckboxColumn("different classes"),
            "cross_split": st.column_config.CheckboxColumn("different splits"),
            "paths": st.column_config.TextColumn("files", width="large"),
            "files": st.column_config.NumberColumn("copies"),
        },
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
    st.header("Dataset")
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
        _folder_tab(cfg.allowed_roots)
    with tabs[1]:
        _upload_tab(cfg.data_dir / "uploads")
    with tabs[2]:
        _sample_tab(cfg.data_dir)
    with tabs[3]:
        _cifar_tab(cfg.data_dir)

    st.divider()
    path = st.session_state.get(DATASET_KEY)
    if not path:
        st.info("No dataset chosen yet. Pick a folder above, or try the sample dataset.")
        return
    _report_section(path)


main()
