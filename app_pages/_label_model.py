"""The Label page's "the model asks" panel: once two classes have a few labels, a head on the
cached features (``modelkit.labelling.suggest``) proposes a class for every unlabelled image.
Shown here: the images it most wants labelled with the reason it gives, one button that accepts
every proposal above the calibrated confidence for 95% (with the count), and the estimated
accuracy against labels a class."""

from __future__ import annotations

import streamlit as st

from modelkit.labelling.session import Labeller
from modelkit.labelling.suggest import MIN_PER_CLASS
from studio.label_figures import curve_figure
from studio.label_state import COPY_KEY, LIKE_KEY, ModelRound, give, name_of, run_change, thumb
from studio.text import md

SHOWN = 8  # asks drawn with their thumbnails


def _accept(lab_round: ModelRound) -> None:
    copy = bool(st.session_state.get(COPY_KEY, False))
    run_change(
        lambda lab: lab.accept(lab_round.suggestions, copy),
        lambda r: f"Accepted {len(r.done)} suggestions.",
    )


def _like(path: str) -> None:
    st.session_state[LIKE_KEY] = path


def model_panel(lab: Labeller, lab_round: ModelRound) -> None:
    s = lab_round.suggestions
    if not s.ready:
        st.info(
            f"The model asks once two classes have {MIN_PER_CLASS} labels each. Until then it "
            "offers typical images from every part of the map (first in the views above)."
        )
        return
    acc = f"{s.estimated_accuracy:.0%}" if s.estimated_accuracy is not None else "?"
    c1, c2, c3 = st.columns(3)
    c1.metric("Labels given", s.labelled)
    c2.metric("Estimated accuracy", acc, help="Out of fold, on the labels given.")
    c3.metric(f"Sure enough for {s.target:.0%}", len(s.accept))
    if s.reached:
        st.caption(
            f"Calibrated confidence ≥ {s.threshold:.2f} was right {s.target:.0%} of the time on "
            "the labels given (held out): the bar for accepting."
        )
    else:
        st.caption(f"No confidence reaches {s.target:.0%} on the labels given yet: label more.")
    st.button(
        f"Accept all {len(s.accept)} suggestions above the calibrated confidence for "
        f"{s.target:.0%}",
        key="label_accept", type="primary", disabled=not s.accept, on_click=_accept,
        args=(lab_round,), icon=":material/done_all:",
    )  # fmt: skip
    if lab_round.curve:
        st.plotly_chart(curve_figure(lab_round.curve), key="label_curve")
    asks = [a for a in s.asks if a["path"] in set(lab.folder.unlabelled)][:SHOWN]
    if not asks:
        return
    st.markdown("**The model would like these labelled next** (most useful first)")
    for n, ask in enumerate(asks):
        c1, c2, c3 = st.columns([1, 5, 2], vertical_alignment="center")
        if (img := thumb(lab, ask["path"])) is not None:
            c1.image(img, width=64)
        guess = f"guess **{md(ask['guess'])}** ({ask['confidence']:.0%}) · " if ask["guess"] else ""
        c2.markdown(f"{md(name_of(lab, ask['path']))}  \n{guess}{md(ask['reason'])}")
        if ask["guess"]:
            c3.button(
                f"Label as {md(ask['guess'])}", key=f"label_ask_{n}", on_click=give,
                args=([ask["path"]], ask["guess"]),
            )  # fmt: skip
        c3.button("More like this", key=f"label_ask_like_{n}", on_click=_like, args=(ask["path"],))
