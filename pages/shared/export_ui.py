"""Export a run's network (Runs and Evaluate pages): one button per format, each making a zip
with cifar_core.share.network when asked (an export takes seconds), then offering it for
download with how its check went."""

from __future__ import annotations

import tempfile
from pathlib import Path

import streamlit as st

from cifar_core.errors import CifarError
from cifar_core.runs.store import Run
from cifar_core.share.network import FORMATS, export_run, zip_name


def export_ui(run: Run, key: str) -> None:
    """The export buttons for `run`'s network (`key` keeps two pages' widgets apart)."""
    st.markdown("**Use the network elsewhere**: a zip with the network file, a description "
                "of it and a short program that names what a picture shows.")
    if not run.checkpoint or not Path(run.checkpoint).is_file():
        st.caption("This run has no saved network to export.")
        return
    for column, spec in zip(st.columns(len(FORMATS)), FORMATS.values(), strict=True):
        with column:
            _format_ui(run, spec.name, key)


def _format_ui(run: Run, fmt: str, key: str) -> None:
    """One format: 'Make the ... zip', then its download and what the check found."""
    spec = FORMATS[fmt]
    kept = f"export_{key}_{fmt}"
    made = st.session_state.get(kept)
    if made is not None and made["run"] != (run.id, run.checkpoint, run.finished):
        made = None  # made for another run (or another network of this one)
    if made is None:
        help_text = ("needs onnxruntime, numpy and Pillow to use" if fmt == "onnx" else
                     "needs PyTorch to use")
        if not st.button(f"Make the {spec.title} zip", key=f"{kept}_make", help=help_text,
                         icon=":material/package_2:"):
            return
        with st.spinner(f"Exporting the network as {spec.title} and checking it ..."):
            try:
                made = _made(run, fmt)
            except CifarError as exc:
                st.error(str(exc))
                return
        st.session_state[kept] = made
    st.download_button(f"{spec.title} zip ({made['name']})", made["data"],
                       file_name=made["name"], mime="application/zip",
                       icon=":material/download:", key=f"{kept}_download")
    st.caption(made["check"])


def _made(run: Run, fmt: str) -> dict:
    """The zip of `run`'s network in `fmt`, made in a temporary folder, with its check."""
    name = zip_name(run.id, fmt)
    with tempfile.TemporaryDirectory(prefix="cifar-export-") as folder:
        done = export_run(run, fmt, Path(folder) / name)
        data = done.path.read_bytes()
    return {"run": (run.id, run.checkpoint, run.finished), "name": name, "data": data,
            "check": done.check.in_words()}
