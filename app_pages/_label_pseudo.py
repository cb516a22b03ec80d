"""The Label page's pseudo-label choice, beside "Train on these labels": the unlabelled images
the model is sure of can join training, but only when they raised accuracy on the person's own
validation labels. ``modelkit.labelling.pseudo`` finds them, compares and says so in one
sentence; this draws the checkbox and the sentence."""

from __future__ import annotations

import streamlit as st

from modelkit.errors import ModelkitError
from modelkit.labelling.pseudo import PseudoLabels
from modelkit.labelling.session import Labeller
from studio.label_state import pseudo_round
from studio.text import md

PSEUDO_INPUT = "label_pseudo"


def pseudo_choice(lab: Labeller) -> PseudoLabels | None:
    """The checkbox and the comparison; the pseudo-labels when it is ticked (it can only be
    ticked when they helped). Nothing is drawn while no image is left to label."""
    if not lab.folder.unlabelled:
        return None
    try:
        result = pseudo_round(lab)
    except (ModelkitError, OSError) as exc:
        st.caption(f"Pseudo-labels: {md(exc)}")
        return None
    ticked = st.checkbox(
        f"Also train on the {len(result.pseudo)} confident suggestions (pseudo-labels)",
        key=PSEUDO_INPUT, disabled=not result.helped,
        help="The unlabelled images above the calibrated confidence for "
        f"{result.target:.0%} join the training images with the model's guess, without being "
        "moved; validation keeps only your labels. Offered only when they raised accuracy on "
        "your validation labels.",
    )  # fmt: skip
    said = result.sentence()
    st.caption(md(said[:1].upper() + said[1:]) + ".")
    return result if ticked and result.helped else None
