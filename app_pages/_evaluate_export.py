"""The Evaluate page's Export tab: export a run's model, see the proof that it matches PyTorch
(the parity table modelkit stores in the model card), and download the file and its card.

Exports take from seconds to minutes, so they run in a background ``ExportJob`` and a fragment
shows its progress; the page stays usable meanwhile. Numbers come from modelkit.serving.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from modelkit.runs.store import RunInfo
from modelkit.serving.export import DEFAULT_MAX_DROP, FORMATS, card_is_current, files_of
from modelkit.serving.export_job import ExportJob
from modelkit.serving.model_card import CARD, export_dir, read_card
from studio.text import md

FORMAT_NAMES = {
    "torchscript": "TorchScript (PyTorch, fp32)",
    "onnx": "ONNX (fp32)",
    "onnx-int8": "ONNX int8 (ONNX Runtime)",
    "openvino": "OpenVINO IR (fp32)",
    "openvino-int8": "OpenVINO IR int8 (NNCF)",
}


@st.cache_resource
def _export_jobs() -> dict[str, ExportJob]:
    """The server's export jobs by run folder (one export at a time: each uses every core)."""
    return {}


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _summary_rows(s: dict[str, Any]) -> list[dict[str, str]]:
    change = s.get("accuracy_change")
    rows = [
        ("Checked on", s["verified_on"]),
        ("Top-1 agreement with PyTorch", _percent(s["top1_agreement"])),
        ("Accuracy (PyTorch)", _percent(s["accuracy_pytorch"])),
        ("Accuracy (export)", _percent(s["accuracy_export"])),
        ("Accuracy change", "n/a" if change is None else f"{100 * change:+.1f} points"),
        ("Largest probability difference", f"{s['max_probability_diff']:.4f}"),
        ("File size", f"{s['file_bytes'] / 1e6:.1f} MB"),
    ]
    if "latency_ms_batch1" in s:
        rows += [
            (
                "Latency, 1 image",
                f"{s['latency_ms_batch1']:.1f} ms (PyTorch {s['pytorch_latency_ms_batch1']:.1f})",
            ),
            (
                "Throughput, batch of 32",
                f"{s['throughput_batch32']:.0f} img/s "
                f"(PyTorch {s['pytorch_throughput_batch32']:.0f})",
            ),
        ]
    return [{"measure": k, "value": v} for k, v in rows]


def parity_table(parity: dict[str, Any]) -> None:
    """The summary and the per-class table of one export."""
    st.dataframe(pd.DataFrame(_summary_rows(parity["summary"])), hide_index=True)
    if parity["per_class"]:
        per_class = pd.DataFrame(parity["per_class"])
        per_class["change"] = 100 * per_class["change"]
        pct = st.column_config.NumberColumn(format="percent")
        st.dataframe(
            per_class.sort_values("change"),
            hide_index=True,
            column_order=["class", "images", "accuracy_pytorch", "accuracy_export", "change"],
            column_config={
                "accuracy_pytorch": pct,
                "accuracy_export": pct,
                "change": st.column_config.NumberColumn("change (points)", format="%+.1f"),
            },
        )


def _model_bytes(out: Path, fmt: str) -> Callable[[], bytes]:
    """The export's file, or a zip of its files (OpenVINO: .xml and .bin), read on click."""
    names = files_of(fmt)
    if len(names) == 1:
        return lambda: (out / names[0]).read_bytes()

    def zipped() -> bytes:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
            for name in names:
                zf.write(out / name, name)
        return buf.getvalue()

    return zipped


def _saved(run: RunInfo, fmt: str) -> None:
    """The format's parity table and downloads, when the run has that export."""
    out = export_dir(run.path)
    card = read_card(out)
    entry = card.get("exports", {}).get(fmt)
    if not isinstance(entry, dict) or not all((out / f).is_file() for f in files_of(fmt)):
        st.caption(f"{md(run.id)} has no {FORMAT_NAMES[fmt]} export yet.")
        return
    if not card_is_current(run.path, fmt):
        st.warning("This export was made from an older checkpoint: export again to match it.")
    if isinstance(entry.get("parity"), dict):
        parity_table(entry["parity"])
    for group in ("quantization", "openvino"):
        floats = (entry.get(group) or {}).get("float_nodes") or (entry.get(group) or {}).get(
            "float_layers"
        )
        if floats:
            with st.expander("What stays in float, and why"):
                st.dataframe(pd.DataFrame(floats), hide_index=True)
    names = files_of(fmt)
    label = names[0] if len(names) == 1 else f"{Path(names[0]).stem}.zip"
    c1, c2 = st.columns(2)
    c1.download_button(
        f"Download {label}",
        _model_bytes(out, fmt),
        file_name=f"{run.id}-{label}",
        on_click="ignore",
        icon=":material/download:",
        key="evaluate_export_download",
    )
    c2.download_button(
        "Download the model card",
        json.dumps(card, indent=2),
        file_name=f"{run.id}-{CARD}",
        mime="application/json",
        on_click="ignore",
        icon=":material/description:",
        key="evaluate_export_card",
    )


@st.fragment(run_every=1.0)
def _progress(job: ExportJob) -> None:
    state = job.snapshot()
    if state.running:
        step = state.steps[-1] if state.steps else "starting"
        st.info(f"Exporting to {FORMAT_NAMES[state.format]}: {md(step)}…", icon="⏳")
        return
    st.rerun(scope="app")  # done: draw the result with the rest of the tab


def render(run: RunInfo) -> None:
    """The Export tab for ``run``."""
    jobs = _export_jobs()
    key = str(run.path)
    c1, c2, c3 = st.columns([2, 1.4, 1], vertical_alignment="bottom")
    fmt = c1.selectbox(
        "Format", FORMATS, format_func=FORMAT_NAMES.get, key="evaluate_export_format"
    )
    max_drop = c2.number_input(
        "Refuse if accuracy falls more than (points)",
        min_value=0.0,
        max_value=100.0,
        value=DEFAULT_MAX_DROP,
        step=0.5,
        key="evaluate_export_max_drop",
        help="An export that loses more validation accuracy than this is not written.",
    )
    busy = next((j for j in jobs.values() if j.running), None)
    if c3.button(
        "Export and check",
        key="evaluate_export_start",
        type="primary",
        disabled=busy is not None,
        help="Write the file, then run it next to PyTorch on the validation images.",
    ):
        jobs[key] = busy = ExportJob(run.path, fmt, max_drop).start()
    st.caption(
        "Each export is checked on this run's validation images against the PyTorch model: "
        "agreement, accuracy per class, probabilities, size and speed on this machine."
    )
    job = jobs.get(key)
    if busy is not None:
        if busy is job:
            _progress(job)
        else:
            st.caption(f"Another export is running ({md(Path(busy.snapshot().run).name)}).")
    if job is not None and not job.running:
        state = job.snapshot()
        if state.format == fmt and state.error:
            st.error(f"Export to {FORMAT_NAMES[fmt]} failed: {md(state.error)}")
            if state.refused is not None:
                parity_table(state.refused.parity)
            return
    _saved(run, fmt)
