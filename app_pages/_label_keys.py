"""The Label page's one-image-at-a-time view: the image the model most wants labelled, and a
box that takes its class as a number key (1 for the first class, 0 for "not sure"), then Enter.

Why a text box and not a key listener: Streamlit has no key events of its own, and a script in
``st.components.v1.html`` lives in an iframe that cannot hand a value back to the page without
reaching into the parent document's widgets (fragile across Streamlit versions, and a listener
left behind by a rerun would label twice). A ``text_input`` with ``on_change`` is a real widget:
the keys go where the focus is, Enter commits, the box is emptied for the next image and keeps
the focus, and AppTest and Playwright drive it the way a person does.
"""

from __future__ import annotations

import streamlit as st

from modelkit.data.imageio import load_image
from modelkit.errors import ModelkitError
from modelkit.labelling.session import Labeller
from modelkit.paths import confine_to
from studio.label_state import NOT_SURE, give, name_of, say, thumb
from studio.state import settings
from studio.text import md

KEY_INPUT = "label_key"  # the box that takes the number key
SIDE = 256  # px of the image shown


def _keyed(path: str, choices: list[str]) -> None:
    """on_change of the key box: the digit typed picks a class for ``path``."""
    typed = st.session_state.get(KEY_INPUT, "").strip()
    st.session_state[KEY_INPUT] = ""
    if not typed:
        return
    if typed.isdigit() and int(typed) < len(choices) + 1:
        n = int(typed)
        give([path], NOT_SURE if n == 0 else choices[n - 1])
    else:
        say("warning", f"{md(typed)} is no class key: use 1 to {len(choices)}, or 0 for not sure.")


def _image(lab: Labeller, path: str):
    try:
        with confine_to(settings().allowed_roots):
            img = load_image(path)
    except (ModelkitError, OSError):
        return thumb(lab, path)
    img.thumbnail((SIDE, SIDE))
    return img


def keys_panel(lab: Labeller, order: list[str], choices: list[str]) -> None:
    """The first image of ``order`` (unlabelled, most useful first) and the key box;
    ``choices``: the classes, in the order of their keys."""
    if not order:
        st.success("Every image has a class or is in the not-sure bin.")
        return
    if not choices:
        st.info("Type the class names above: each gets a number key.")
        return
    path = order[0]
    shown = _image(lab, path)
    if shown is not None:
        st.image(shown, width=SIDE)
    st.caption(f"{md(name_of(lab, path))} · {len(order)} to label")
    legend = " · ".join(f"**{i}** {md(c)}" for i, c in enumerate(choices[:9], 1))
    st.markdown(f"{legend} · **0** not sure")
    st.text_input(
        "Class key (a number, then Enter)", key=KEY_INPUT, on_change=_keyed,
        args=(path, choices[:9]), max_chars=2,
        help="Click here once, then type a number and Enter for each image: the next one is "
        "shown at once and the box keeps the focus.",
    )  # fmt: skip
    st.caption(f"Then: {md(name_of(lab, order[1]))}" if len(order) > 1 else "The last one.")
