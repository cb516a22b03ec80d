"""The Label page's map: every image as a dot placed by the library's 2-D layout (similar photos
together), coloured by class; a box or lasso drawn on it selects images, and one button gives
them the chosen class. The selection comes back through ``st.plotly_chart(on_select="rerun")``
as the dots' ``customdata`` (their rows in the feature table)."""

from __future__ import annotations

import streamlit as st

from modelkit.errors import ModelkitError
from modelkit.labelling.layout import LayoutError
from modelkit.labelling.session import Labeller
from studio.label_figures import UNLABELLED, map_figure
from studio.label_state import NOT_SURE, give, name_of
from studio.text import md

MAP_KEY = "label_map"  # the plotly chart's selection state


def _groups(lab: Labeller) -> list[str]:
    where = lab.folder.label_of()
    skipped = set(lab.folder.skipped)
    return [where.get(p, NOT_SURE if p in skipped else UNLABELLED) for p in lab.table().paths]


def _selected(event, count: int) -> list[int]:
    try:
        points = event["selection"]["points"]
    except (KeyError, TypeError):
        return []
    rows = []
    for pt in points:
        row = pt.get("customdata")
        row = row[0] if isinstance(row, list) and row else row
        if isinstance(row, (int, float)) and 0 <= int(row) < count and int(row) not in rows:
            rows.append(int(row))
    return rows


def map_panel(lab: Labeller, brush: str, classes: list[str]) -> None:
    """The map and what its selection can do; ``brush`` is the class a selection gets,
    ``classes`` the classes in the order their colours are given."""
    table = lab.table()
    if len(table.paths) < 2:
        st.caption("The map needs two images or more.")
        return
    try:
        with st.spinner("Drawing the map…"):
            coords = lab.coords()
    except (LayoutError, ModelkitError, ValueError) as exc:
        st.error(f"No map: {md(exc)}")
        return
    names = [name_of(lab, p) for p in table.paths]
    fig = map_figure(coords, names, _groups(lab), classes)
    event = st.plotly_chart(
        fig, key=MAP_KEY, on_select="rerun", selection_mode=("box", "lasso"),
        config={"displayModeBar": True, "modeBarButtonsToRemove": ["toImage"]},
    )  # fmt: skip
    rows = _selected(event, len(table.paths))
    if not rows:
        st.caption("Drag a box (or pick the lasso above the map) around a cluster to label it.")
        return
    paths = [table.paths[r] for r in rows]
    st.markdown(f"**{len(rows)} selected on the map**")
    shown = ", ".join(md(n) for n in sorted(names[r] for r in rows)[:8])
    st.caption(shown + (" …" if len(rows) > 8 else ""))
    target = "the not-sure bin" if brush == NOT_SURE else md(brush)
    if brush == NOT_SURE:  # only unlabelled images go to the bin
        paths = [p for p in paths if p in set(lab.folder.unlabelled)]
    st.button(
        f"Label the {len(paths)} selected as {target}" if brush != NOT_SURE
        else f"Put the {len(paths)} selected in the not-sure bin",
        key="label_map_apply", type="primary", disabled=not paths or not brush,
        on_click=give, args=(paths, brush),
    )  # fmt: skip
    st.caption("Images that have a class already move to the new one (a relabel, undoable).")
