"""The Evaluate page's Calibration tab: reliability before/after, the confidence gap (ECE), and
the "unknown" threshold.

Reads ``runs/<id>/calibration.json`` (modelkit.evaluation.calibration); calibrates an old run on
demand; the user sets a target accuracy (the threshold that reaches it on validation is proposed)
or moves the threshold along the coverage-vs-accuracy curve, and saves it into the checkpoint.
"""

from __future__ import annotations

import math

import streamlit as st

from modelkit.errors import ModelkitError
from modelkit.evaluation import calibration as cal
from modelkit.evaluation.calibration_report import read_report
from modelkit.runs.store import RunInfo
from studio.calibration_figures import coverage_figure, reliability_figure
from studio.text import md

SAVED = "_calibration_saved"  # (kind, message) of the last save, shown once after it
TEMPERATURE_HELP = (
    "How much the model's confidences are softened (above 1) or sharpened (below 1) so that "
    "they match how often it is right on the validation images (temperature scaling)."
)
ECE_LABEL, ECE_HELP = (
    "Confidence gap (ECE)",
    "Expected calibration error: the average gap between how sure the model says it is and "
    "how often it is right, on the validation images. Lower is better: at 0, answers given "
    "with 80% confidence are right 80% of the time.",
)
NLL_LABEL, NLL_HELP = (
    "Log loss (NLL)",
    "Negative log-likelihood: the average penalty for the probability given to the right "
    "class, on the validation images. Lower is better; confident mistakes cost most.",
)


def _calibrate_now(run: RunInfo, target: float) -> None:
    with st.spinner(f"Calibrating {run.id} on its validation split…", show_time=True):
        try:
            cal.calibrate_run(run.path, target)
        except (ModelkitError, RuntimeError, OSError, ValueError) as exc:
            st.error(f"Could not calibrate {md(run.id)}: {md(exc)}")
            return
    st.session_state.pop(f"calibration_threshold_{run.id}", None)
    st.rerun()


def _save_threshold(run: RunInfo, threshold_key: str, target_key: str) -> None:
    threshold = float(st.session_state[threshold_key])
    try:
        cal.set_threshold(run.path, threshold, st.session_state.get(target_key))
    except (ModelkitError, RuntimeError, OSError, ValueError) as exc:
        st.session_state[SAVED] = ("error", f"Could not save the threshold: {md(exc)}")
        return
    st.session_state[SAVED] = (
        "success",
        f"Saved: {md(run.id)} answers 'unknown' below {threshold:.3f}.",
    )


def calibration_tab(run: RunInfo) -> None:
    report = cal.load_report(run.path)
    if report is None:
        damaged = read_report(run.path).problem
        if damaged:
            st.warning(md(damaged))
        st.info(
            "This run is not calibrated yet: its confidences are the raw softmax, and it never "
            "answers 'unknown'. Calibration fits a temperature on the validation split."
        )
        target = st.number_input(
            "Target accuracy", 0.5, 1.0, cal.DEFAULT_TARGET, 0.01, key="calibration_target_new"
        )
        if st.button("Calibrate", type="primary", key="calibration_run"):
            _calibrate_now(run, target)
        return
    c = st.columns(4)
    c[0].metric("Temperature", f"{report['temperature']:.2f}", border=True, help=TEMPERATURE_HELP)
    c[1].metric(
        ECE_LABEL,
        f"{report['ece_after']:.3f}",
        f"{report['ece_after'] - report['ece_before']:+.3f} (was {report['ece_before']:.3f})",
        delta_color="inverse",
        border=True,
        help=ECE_HELP,
    )
    c[2].metric(
        NLL_LABEL,
        f"{report['nll_after']:.3f}",
        f"{report['nll_after'] - report['nll_before']:+.3f} (was {report['nll_before']:.3f})",
        delta_color="inverse",
        border=True,
        help=NLL_HELP,
    )
    c[3].metric(
        "Images", f"{report.get('samples', 0):,}", border=True, help="Validation images measured."
    )
    left, right = st.columns(2)
    left.plotly_chart(
        reliability_figure(report.get("bins_before", []), report.get("bins_after", [])),
        key="calibration_reliability",
    )
    curve = report["curve"]
    with right:
        t1, t2 = st.columns(2)
        target = t1.number_input(
            "Target accuracy",
            0.5,
            1.0,
            float(report.get("target_accuracy", cal.DEFAULT_TARGET)),
            0.01,
            key=f"calibration_target_{run.id}",
            help="The proposed threshold is the lowest that keeps answered images this accurate, "
            "with a margin of about one standard error so that new images are too.",
        )
        proposed = cal.threshold_on_curve(curve, target, int(report.get("samples", 0)))
        key = f"calibration_threshold_{run.id}"
        if st.session_state.get(f"{key}_for") != target:  # a new target proposes a new threshold
            # down to the slider's step, never up: rounded up past the curve's threshold it would
            # answer none of the images the proposal was chosen to answer
            st.session_state[key] = math.floor(proposed * 1000) / 1000
            st.session_state[f"{key}_for"] = target
        threshold = t2.slider("Unknown below", 0.0, 1.0, step=0.001, format="%.3f", key=key)
        chart = st.empty()
        chart.plotly_chart(coverage_figure(curve, threshold, target), key="calibration_coverage")
        answered = [
            (cov, acc)
            for t, cov, acc in zip(curve["threshold"], curve["coverage"], curve["accuracy"])
            if t >= threshold
        ]
        cov, acc = answered[-1] if answered else (0.0, 0.0)
        saved = float(report["threshold"])
        unsaved = (
            ""
            if f"{saved:.3f}" == f"{threshold:.3f}"
            else f" (press Save threshold to keep {threshold:.3f})"
        )
        st.caption(
            f"At {threshold:.3f} the model answers {cov:.0%} of validation images, "
            f"{acc:.1%} of them correctly; the rest are 'unknown'. "
            f"Saved threshold: {saved:.3f}{unsaved}."
        )
        b1, b2 = st.columns(2)
        # saved in the button's callback, before this tab reads the report again: the caption
        # above then names the value just saved, not the one before it
        b1.button(
            "Save threshold", type="primary", key="calibration_save",
            on_click=_save_threshold, args=(run, key, f"calibration_target_{run.id}"),
        )  # fmt: skip
        kind, message = st.session_state.pop(SAVED, (None, None))
        if kind == "success":
            st.success(message)
        elif kind == "error":
            st.error(message)
        if b2.button("Calibrate again", key="calibration_again"):
            _calibrate_now(run, target)
