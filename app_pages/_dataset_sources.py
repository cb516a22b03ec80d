"""The Dataset page's four ways in: a folder on this machine (typed or browsed), an uploaded zip
(with the earlier uploads and their quota), the bundled digits, CIFAR. Each puts the folder it
chose in ``st.session_state[DATASET_KEY]``; app_pages/dataset.py draws the tabs and the check.

Panels of that one page, kept next to it; the leading underscore says this file is no page
(app.py's ``st.navigation`` lists the pages).
"""

from __future__ import annotations

import os
from pathlib import Path

import streamlit as st

from modelkit.data.archive import ArchiveError
from modelkit.data.browse import (
    BrowseError,
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
from modelkit.data.dataset_folders import InnerDataset, datasets_inside
from modelkit.data.samples import default_digits_dir, make_digits_dataset
from modelkit.data.uploads import delete_upload, list_uploads, unpack_upload, upload_quota
from modelkit.errors import ModelkitError
from studio.state import DATASET_KEY, choose_dataset, forget_dataset
from studio.text import md

BROWSE_KEY = "ds_browse_dir"  # folder shown in the browser; None = list of allowed roots
PATH_INPUT_KEY = "ds_path_input"
UPLOADS_KEY = "ds_uploads"  # {uploaded file_id: dataset path or error text}
DELETE_UPLOAD_KEY = "ds_upload_delete_pending"  # upload folder awaiting a yes
MAX_BUTTONS = 48


def _choose(path: str | os.PathLike) -> None:
    choose_dataset(path)


def _browse_to(path: str | None) -> None:
    """Button callback: show ``path`` in the browser and in the path box."""
    st.session_state[BROWSE_KEY] = path
    if path is not None:
        st.session_state[PATH_INPUT_KEY] = path


def _use_folder(path: str) -> None:
    _choose(path)
    st.session_state[PATH_INPUT_KEY] = path


def folder_tab(roots: tuple[Path, ...]) -> None:
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

    inner = _datasets_inside(here, tuple(p.name for p in subfolders))
    hint = None if inner else looks_like_dataset(here)
    if inner:
        st.markdown(
            f":material/folder_open: {md(here)} — a folder of **{len(inner)} datasets**: "
            "open the one to check and train on"
        )
    else:
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
    if inner:
        _dataset_buttons(inner)
        names = {d.path.name for d in inner}
        subfolders = [p for p in subfolders if p.name not in names]
        if subfolders:
            st.caption("Other folders here:")
    if subfolders:
        _folder_buttons([str(p) for p in subfolders])
    elif not inner:
        st.caption("No sub-folders here.")


@st.cache_data(ttl=20, max_entries=64, show_spinner=False)
def _datasets_inside(here: str, children: tuple[str, ...]) -> list[InnerDataset]:
    """Cached briefly: it peeks two folder levels down, and every click reruns the page."""
    return datasets_inside(here, list(children))


def _open_dataset(path: str) -> None:
    """Button callback: check and use one data set of a folder of data sets."""
    _use_folder(path)
    st.session_state[BROWSE_KEY] = path


def _dataset_buttons(inner: list[InnerDataset]) -> None:
    cols = st.columns(3)
    for n, found in enumerate(inner[:MAX_BUTTONS]):
        cols[n % 3].button(
            f":material/dataset: Open {md(found.path.name)} · {found.hint}",
            key=f"ds_inner_{n}",
            type="primary",
            on_click=_open_dataset,
            args=(str(found.path),),
            width="stretch",
        )
    if len(inner) > MAX_BUTTONS:
        st.caption(f"…and {len(inner) - MAX_BUTTONS} more: type the path above to open one.")


def _folder_buttons(paths: list[str], full_names: bool = False) -> None:
    cols = st.columns(4)
    for n, path in enumerate(paths[:MAX_BUTTONS]):
        label = f":material/folder: {md(path if full_names else Path(path).name)}"
        cols[n % 4].button(
            label, key=f"ds_browse_{n}", on_click=_browse_to, args=(path,), width="stretch"
        )
    if len(paths) > MAX_BUTTONS:
        st.caption(f"…and {len(paths) - MAX_BUTTONS} more: type the path above to open one.")


def upload_tab(uploads_dir: Path) -> None:
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
                        forget_dataset()
                    st.session_state.pop(UPLOADS_KEY, None)
                    st.rerun()
            if no.button("Cancel", key="ds_upload_delete_cancel"):
                st.session_state.pop(DELETE_UPLOAD_KEY, None)
                st.rerun()


def sample_tab(data_dir: Path) -> None:
    st.markdown(
        "**Handwritten digits**: 1,797 small pictures of the digits 0 to 9 (ten classes), made "
        "from the sample data that ships with scikit-learn. Nothing is downloaded; the images are "
        "written on this machine the first time."
    )
    if st.button("Use the bundled sample dataset", key="ds_sample", type="primary"):
        with st.spinner("Writing the digit images…"):
            path = make_digits_dataset(default_digits_dir(data_dir))
        _choose(path)


def cifar_tab(data_dir: Path) -> None:
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
