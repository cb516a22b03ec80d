"""The Label page's thumbnails: the unlabelled images (the ones the model asks about first), each
labelled with the chosen class by one click on its button; "More like this" (the nearest
neighbours of one image, exact cosine search in the library); and the near-duplicates of images
just labelled, offered the same class in one click."""

from __future__ import annotations

import hashlib

import streamlit as st

from modelkit.labelling.session import Labeller
from studio.label_state import LIKE_KEY, NOT_SURE, OFFERS_KEY, give, name_of, thumb
from studio.text import md

COLUMNS = 6
PAGE = 24  # thumbnails drawn at a time
LIKE = 12  # neighbours shown by "More like this"


def tile_key(prefix: str, path: str) -> str:
    """A widget key for one image that stays the same across reruns (names can be anything)."""
    digest = hashlib.blake2b(path.encode("utf-8", "surrogateescape"), digest_size=8)
    return f"{prefix}_{digest.hexdigest()}"


def _like(path: str | None) -> None:
    st.session_state[LIKE_KEY] = path


def _tiles(lab: Labeller, paths: list[str], brush: str, prefix: str) -> None:
    verb = "Not sure" if brush == NOT_SURE else f"→ {md(brush)}" if brush else "Label"
    cols = st.columns(COLUMNS)
    for n, path in enumerate(paths):
        with cols[n % COLUMNS]:
            img = thumb(lab, path)
            if img is not None:
                st.image(img, width=96)
            st.caption(md(name_of(lab, path)))
            st.button(
                verb, key=tile_key(f"{prefix}_give", path), disabled=not brush, on_click=give,
                args=([path], brush), width="stretch",
            )  # fmt: skip
            if prefix == "label_grid":
                st.button(
                    "More like this", key=tile_key("label_like", path), on_click=_like,
                    args=(path,), width="stretch", type="tertiary",
                )  # fmt: skip


def offers_panel(lab: Labeller) -> None:
    """Near-duplicates of the images just labelled, still unlabelled: one click gives them the
    same class."""
    offer = st.session_state.get(OFFERS_KEY)
    if not offer:
        return
    cls, paths = offer
    paths = [p for p in paths if p in set(lab.folder.unlabelled)]
    if not paths:
        st.session_state.pop(OFFERS_KEY, None)
        return
    with st.container(border=True):
        st.markdown(
            f"**{len(paths)} near-duplicate(s)** of what you just labelled {md(cls)}: "
            + ", ".join(md(name_of(lab, p)) for p in paths[:6])
        )
        c1, c2 = st.columns(2)
        c1.button(
            f"Label them {md(cls)} too", key="label_offer_yes", type="primary", on_click=give,
            args=(paths, cls),
        )  # fmt: skip
        c2.button("No", key="label_offer_no", on_click=st.session_state.pop, args=(OFFERS_KEY,))


def like_panel(lab: Labeller, brush: str) -> None:
    path = st.session_state.get(LIKE_KEY)
    if not path or lab.table().row(path) is None:
        return
    with st.container(border=True):
        c1, c2 = st.columns([5, 1])
        c1.markdown(f"**More like {md(name_of(lab, path))}** (most similar first)")
        c2.button("Close", key="label_like_close", on_click=_like, args=(None,))
        like = [p for p, _sim in lab.like(path, LIKE)]
        _tiles(lab, like, brush, "label_like_tile")


def grid_panel(lab: Labeller, order: list[str], brush: str) -> None:
    """Thumbnails of ``order`` (the unlabelled images, most useful first), a page at a time."""
    if not order:
        return
    pages = (len(order) + PAGE - 1) // PAGE
    start = 0
    if pages > 1:
        page = st.number_input(f"Page (of {pages})", 1, pages, 1, key="label_grid_page")
        start = (int(page) - 1) * PAGE
    _tiles(lab, order[start : start + PAGE], brush, "label_grid")
