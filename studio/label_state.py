"""What the Label page and its panels share: session keys, the folder's ``Labeller`` kept across
reruns, the classes a person typed, one way to run a change (errors shown, never raised), and
the suggestion round, computed once per state of the labels rather than once per rerun.

The labelling itself is ``modelkit.labelling`` (``session.Labeller``); nothing here decides a
label.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import streamlit as st

from modelkit.errors import ModelkitError
from modelkit.labelling.curve import CurvePoint, accuracy_curve
from modelkit.labelling.folder import class_problem, shown
from modelkit.labelling.pseudo import PseudoLabels, pseudo_labels
from modelkit.labelling.session import Labeller, Suggestions
from modelkit.paths import confine_to
from studio.state import settings
from studio.text import md

LABELLER_KEY = "label_labeller"  # Labeller of the folder being labelled
CLASSES_KEY = "label_classes_saved"  # str: the class names as typed (outlives the widget)
MESSAGE_KEY = "label_message"  # (kind, text) to show after a button's rerun
OFFERS_KEY = "label_offers"  # (class, [paths]): near-duplicates to offer that class
LIKE_KEY = "label_like"  # path whose nearest neighbours are shown
ROUND_KEY = "label_round"  # (signature, Suggestions, curve) of the last suggestion round
PSEUDO_KEY = "label_pseudo_round"  # (signature, PseudoLabels) of the last pseudo-label check
BRUSH_KEY = "label_brush"  # the class a click or a map selection gives
COPY_KEY = "label_copy"  # True: copy into the class folder instead of moving
SOURCE_SAVED = "label_source_saved"  # the features chosen, kept while another page is shown
SOURCES = {
    "pretrained": "Bundled ImageNet backbone (EfficientNet-Lite0)",
    "pixels": "Colour thumbnails (no model; a quick look)",
}
NOT_SURE = "not sure"  # the brush that puts images in the skip bin
ASK = 20  # images the model asks about per round


def say(kind: str, text: str) -> None:
    """Show ``text`` (markdown-escaped by the caller) with ``st.<kind>`` after the rerun."""
    st.session_state[MESSAGE_KEY] = (kind, text)


def show_message() -> None:
    if message := st.session_state.pop(MESSAGE_KEY, None):
        getattr(st, message[0])(message[1])


def labeller(root: str, source: str) -> Labeller:
    """The folder's Labeller, kept in the session while the folder and features stay the same
    (its feature table and map are on disk too, so a new session reads them at once)."""
    lab: Labeller | None = st.session_state.get(LABELLER_KEY)
    if lab is None or lab.root != os.path.abspath(root) or lab.source != source:
        with confine_to(settings().allowed_roots):
            lab = Labeller(root, source)
        st.session_state[LABELLER_KEY] = lab
        for key in (OFFERS_KEY, LIKE_KEY, ROUND_KEY, PSEUDO_KEY):
            st.session_state.pop(key, None)
    return lab


def current() -> Labeller | None:
    return st.session_state.get(LABELLER_KEY)


def name_of(lab: Labeller, path: str) -> str:
    """A file's name relative to the folder, as printable text (not yet escaped)."""
    p = Path(path)
    return shown(p.relative_to(lab.root).as_posix() if p.is_relative_to(lab.root) else path)


def typed_classes() -> tuple[list[str], list[str]]:
    """(valid class names typed, one problem sentence per name that cannot be a class)."""
    names, problems = [], []
    for raw in st.session_state.get(CLASSES_KEY, "").split(","):
        name = raw.strip()
        if not name or name in names:
            continue
        if problem := class_problem(name):
            problems.append(problem)
        else:
            names.append(name)
    return names, problems


def classes(lab: Labeller) -> list[str]:
    """The names typed, in their order (so a class keeps its number key when its folder is
    made), then the class folders that were there already."""
    typed = typed_classes()[0]
    return typed + [c for c in lab.folder.classes if c not in typed]


def run_change(what: Callable[[Labeller], object], done: Callable[[object], str] = str) -> None:
    """Button callback body: one change through the Labeller, inside the app's allowed roots;
    ``done(result)`` is the message. An error is shown after the rerun, never raised."""
    lab = current()
    if lab is None:
        return
    try:
        with confine_to(settings().allowed_roots):
            result = what(lab)
    except (ModelkitError, OSError) as exc:
        say("error", md(exc))
        return
    failed = getattr(result, "failed", [])
    text = done(result)
    if failed:
        why = "; ".join(f"{md(name_of(lab, p))}: {md(w)}" for p, w in failed[:5])
        say("warning", f"{text} Not done: {why}")
    elif text:
        say("success", text)


def give(paths: list[str], cls: str) -> None:
    """Label ``paths`` as ``cls`` (the not-sure bin for NOT_SURE), moving or copying as chosen;
    near-duplicates of them are offered the same class."""
    if cls == NOT_SURE:
        run_change(lambda lab: lab.skip(paths), lambda r: f"{len(r.done)} put in the not-sure bin.")
        return
    copy = bool(st.session_state.get(COPY_KEY, False))

    def label(lab: Labeller):
        out = lab.assign(paths, cls, copy)
        st.session_state[OFFERS_KEY] = (cls, out.offers) if out.offers else None
        return out

    verb = "Copied" if copy else "Moved"
    run_change(label, lambda r: f"{verb} {len(r.done)} into {md(cls)}.")


@dataclass
class ModelRound:
    """A suggestion round and the accuracy curve, for one state of the labels."""

    suggestions: Suggestions
    curve: list[CurvePoint]


def _signature(lab: Labeller) -> tuple:
    """What a round depends on: the folder, the features and every label."""
    labels, _ = lab.labels()
    table = lab.table()
    return (lab.root, lab.source, tuple(table.paths), labels.tobytes(), len(lab.folder.skipped))


def model_round(lab: Labeller) -> ModelRound:
    """The round for the labels as they are now: computed after a change, reused on reruns
    that changed nothing (a round trains k-fold heads: a second at thousands of images)."""
    labels, _ = lab.labels()
    table = lab.table()
    signature = _signature(lab)
    saved = st.session_state.get(ROUND_KEY)
    if saved is not None and saved[0] == signature:
        return saved[1]
    with st.spinner("The model looks at the labels…"):
        s = lab.suggest(ASK)
        curve = accuracy_curve(table.features, labels) if len(table.paths) else []
    out = ModelRound(s, curve)
    st.session_state[ROUND_KEY] = (signature, out)
    return out


def pseudo_round(lab: Labeller) -> PseudoLabels:
    """Whether pseudo-labels help, for the labels as they are now (``model_round``'s reuse:
    the check trains its own k-fold heads)."""
    signature = _signature(lab)
    saved = st.session_state.get(PSEUDO_KEY)
    if saved is not None and saved[0] == signature:
        return saved[1]
    with (
        st.spinner("Checking whether the confident suggestions help…"),
        confine_to(settings().allowed_roots),
    ):
        out = pseudo_labels(lab)
    st.session_state[PSEUDO_KEY] = (signature, out)
    return out


def unlabelled_order(lab: Labeller, round_: ModelRound) -> list[str]:
    """Unlabelled images, the ones the model asks about first, then the rest by name."""
    asked = [a["path"] for a in round_.suggestions.asks]
    left = set(lab.folder.unlabelled)
    first = [p for p in asked if p in left]
    seen = set(first)
    return first + [p for p in lab.folder.unlabelled if p not in seen]


def thumb(lab: Labeller, path: str) -> np.ndarray | None:
    try:
        return lab.thumb(path)
    except (ModelkitError, OSError):
        return None
