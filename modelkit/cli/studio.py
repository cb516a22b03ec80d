"""``studio``: start the Streamlit app from wherever the command runs.

The app's files (app.py, app_pages/, .streamlit/config.toml, assets/) are found next to the
``modelkit`` package in a clone or an editable install, and in the ``modelkit_studio`` package of
an installed copy (setup.py ships them there, beside ``modelkit``), found from modelkit's own
location and never through ``sys.path``, which starts with the current folder. Streamlit starts
inside that folder, with Python's safe path (``-P``): a folder a person starts it from may hold
photos from anywhere, and its own ``.streamlit/config.toml`` or Python files must not turn off
the app's safe defaults (127.0.0.1, allowed hosts, CORS and XSRF protection) or run as part of
the app. Datasets the app makes and its runs go to ``./data`` and ``./runs`` of the current
folder unless ``MODELKIT_DATA_DIR`` / ``MODELKIT_RUNS_DIR`` say otherwise, as ``modelkit train``
writes to ``./runs``; never into the installed package.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from modelkit.cli.common import echo
from modelkit.errors import ModelkitError


class StudioNotFoundError(ModelkitError, FileNotFoundError):
    """The app's files are not installed next to the library."""


def app_folder() -> Path:
    """The folder holding app.py and app_pages/: the installed ``modelkit_studio`` beside the
    ``modelkit`` package that is running, or the clone ``modelkit`` sits in.

    Only places found from modelkit's own files count. ``importlib.util.find_spec`` searched
    ``sys.path``, which ``python -m modelkit`` starts with the current folder: a
    ``modelkit_studio/`` in a folder of photos from elsewhere was picked, and Streamlit ran its
    app.py with none of the app's settings (listening on every address)."""
    root = Path(__file__).resolve().parents[2]  # site-packages, or the clone's folder
    candidates = [root / "modelkit_studio", root]
    for folder in candidates:
        if (folder / "app.py").is_file() and (folder / "app_pages").is_dir():
            return folder
    raise StudioNotFoundError(
        "the studio's files (app.py, app_pages/) are not installed next to modelkit; reinstall "
        "with `pip install .` from a clone of the repository"
    )


def studio_command(port: int | None = None, address: str | None = None) -> list[str]:
    """The ``streamlit run`` command line for the app (run it in ``app_folder()``)."""
    cmd = [sys.executable, "-P", "-m", "streamlit", "run", str(app_folder() / "app.py")]
    cmd += ["--server.enableCORS=true", "--server.enableXsrfProtection=true"]
    if port is not None:
        cmd.append(f"--server.port={port}")
    if address is not None:
        cmd.append(f"--server.address={address}")
    return cmd


def studio_env(cwd: Path | None = None) -> dict[str, str]:
    """The environment for the app: data and runs under the current folder unless set, and the
    folder the studio was started from allowed for browsing next to the home folder (the app's
    default), since that is where a person keeps the photos they start it for; a filesystem
    root is never added that way."""
    cwd = (cwd or Path.cwd()).resolve()
    env = dict(os.environ)
    env.setdefault("MODELKIT_DATA_DIR", str(cwd / "data"))
    env.setdefault("MODELKIT_RUNS_DIR", str(cwd / "runs"))
    if not env.get("MODELKIT_ALLOWED_ROOTS"):
        roots = [str(Path.home())] + ([str(cwd)] if cwd != Path(cwd.anchor) else [])
        env["MODELKIT_ALLOWED_ROOTS"] = os.pathsep.join(roots)
    return env


def _studio(args: argparse.Namespace) -> int:
    cmd = studio_command(args.port, args.address)
    env = studio_env()  # from the folder it was started in, before leaving it
    echo(f"starting the studio: {' '.join(cmd)}", sys.stderr)
    sys.stderr.flush()
    os.chdir(app_folder())  # the app's own .streamlit/config.toml, not the start folder's
    if os.name == "posix":  # become Streamlit: Ctrl-C and signals reach it directly
        os.execve(cmd[0], cmd, env)
    try:
        return subprocess.call(cmd, env=env)
    except KeyboardInterrupt:
        return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("studio", help="start the Streamlit app (the studio) in the browser")
    p.add_argument("--port", type=int, default=None, help="port (default: Streamlit's, 8501)")
    p.add_argument(
        "--address",
        default=None,
        help="address to listen on (default 127.0.0.1: only this machine can reach it)",
    )
    p.set_defaults(func=_studio)
