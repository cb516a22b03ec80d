"""Installing the project: ``pip install .`` gives a ``modelkit`` command that works from any
folder, ``modelkit studio`` finds the app's files in the installed copy, and the package's
dependencies are requirements.txt's."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import time
import tomllib
import urllib.request
from pathlib import Path

import pytest
from helpers import free_port
from packaging.requirements import Requirement

from modelkit.cli.studio import app_folder, studio_command, studio_env

REPO = Path(__file__).resolve().parents[2]


def _requirements() -> list[str]:
    lines = (REPO / "requirements.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def test_the_package_depends_on_exactly_requirements_txt():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "dependencies" in project["project"]["dynamic"]
    assert "dependencies" not in project["project"]  # one list, in requirements.txt
    dynamic = project["tool"]["setuptools"]["dynamic"]["dependencies"]
    assert dynamic == {"file": ["requirements.txt"]}
    names = {Requirement(line).name.lower() for line in _requirements()}  # each line parses
    assert {"torch", "streamlit", "starlette", "uvicorn", "python-multipart"} <= names
    assert project["project"]["scripts"] == {"modelkit": "modelkit.cli.main:main"}


def test_studio_runs_the_app_of_this_clone_with_data_and_runs_under_the_current_folder(
    tmp_path, monkeypatch
):
    assert app_folder() == REPO
    cmd = studio_command(port=8765)
    assert cmd[1:5] == ["-P", "-m", "streamlit", "run"] and cmd[5] == str(REPO / "app.py")
    assert "--server.enableXsrfProtection=true" in cmd and "--server.enableCORS=true" in cmd
    assert "--server.port=8765" in cmd
    monkeypatch.delenv("MODELKIT_DATA_DIR", raising=False)
    monkeypatch.setenv("MODELKIT_RUNS_DIR", "/elsewhere/runs")
    env = studio_env(tmp_path)
    assert env["MODELKIT_DATA_DIR"] == str(tmp_path / "data")
    assert env["MODELKIT_RUNS_DIR"] == "/elsewhere/runs"  # what the user set wins
    monkeypatch.delenv("MODELKIT_ALLOWED_ROOTS", raising=False)
    roots = studio_env(tmp_path)["MODELKIT_ALLOWED_ROOTS"].split(os.pathsep)
    assert roots == [str(Path.home()), str(tmp_path.resolve())]
    assert studio_env(Path("/"))["MODELKIT_ALLOWED_ROOTS"] == str(Path.home())
    monkeypatch.setenv("MODELKIT_ALLOWED_ROOTS", "/only/here")
    assert studio_env(tmp_path)["MODELKIT_ALLOWED_ROOTS"] == "/only/here"


def _run(cmd: list[str], cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MODELKIT_RUNS_DIR")}
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{cmd}\n{done.stdout}\n{done.stderr}"
    return done


def _wait_for_http(url: str, proc: subprocess.Popen, seconds: float = 120) -> int:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else "studio exited"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.status
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"nothing answered at {url}")


def _see_this_interpreters_packages(venv_python: Path) -> None:
    """Puts the running interpreter's site-packages after the venv's own through a .pth file:
    ``--system-site-packages`` would show the base Python's, which under a venv (as in CI) are
    not the ones the README's command installed."""
    purelib = _run(
        [str(venv_python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        venv_python.parent,
    ).stdout.strip()
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (Path(purelib) / "_modelkit_test_parent.pth").write_text("\n".join(sorted(ours)) + "\n")


@pytest.mark.slow
def test_pip_install_gives_a_modelkit_command_that_works_from_any_folder(tmp_path, helpers):
    """A fresh venv (seeing this interpreter's packages, so torch is not installed again), the
    project installed from a copy of the clone, then every step a new user takes, from a data
    folder."""
    clone = tmp_path / "clone"
    skip = {".git", "runs", "data", "build", "test-artifacts"}  # the clone's top level only
    shutil.copytree(
        REPO, clone, ignore=lambda d, names: skip & set(names) if Path(d) == REPO else []
    )
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], tmp_path)
    py = venv / "bin" / "python"
    _see_this_interpreters_packages(py)
    # pip builds in an isolated environment with pyproject.toml's [build-system] requirements,
    # as it does for a newcomer: nothing of this machine's own setuptools or wheel is used
    _run([str(py), "-m", "pip", "install", "-q", "--no-deps", "."], clone)
    shutil.rmtree(clone)  # the installed copy must stand on its own
    modelkit = str(venv / "bin" / "modelkit")
    work = tmp_path / "work"
    data = helpers.write_dataset(work / "photos", num_classes=2, per_class=6)

    assert "serve" in _run([modelkit, "--help"], work).stdout
    assert "2 classes" in _run([modelkit, "check", "photos"], work).stdout.lower()
    train = [modelkit, "train", "photos", *helpers.fast_train_flags]
    run_dir = Path(_run(train, work).stdout.strip().splitlines()[-1])
    run_dir = work / run_dir  # printed as given: relative to the folder the command ran in
    assert run_dir.parent == work / "runs" and (run_dir / "checkpoints").is_dir()
    assert data.is_dir()

    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHONPATH", "MODELKIT_"))}
    _studio_answers([modelkit, "studio"], work, env)


def _studio_answers(command: list[str], cwd: Path, env: dict[str, str]) -> None:
    """Start ``command --port N`` and check the app answers at the root, then stop it."""
    port = free_port()
    proc = subprocess.Popen(
        [*command, "--port", str(port)],
        cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert _wait_for_http(f"http://127.0.0.1:{port}/_stcore/health", proc) == 200
        assert _wait_for_http(f"http://127.0.0.1:{port}/", proc) == 200
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.mark.slow
def test_studio_started_in_an_untrusted_folder_ignores_its_config_and_python_files(tmp_path):
    """`cd ~/photos && modelkit studio`: a folder of photos from elsewhere may carry a
    .streamlit/config.toml (here one that moves the whole app under /evil) and Python modules
    named like the ones the app runs (here a `streamlit` package that leaves a mark)."""
    folder = tmp_path / "photos"
    (folder / ".streamlit").mkdir(parents=True)
    (folder / ".streamlit" / "config.toml").write_text('[server]\nbaseUrlPath = "evil"\n')
    mark = tmp_path / "imported-from-the-photo-folder"
    (folder / "streamlit").mkdir()
    (folder / "streamlit" / "__init__.py").write_text(f"open({str(mark)!r}, 'w').close()\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELKIT_")}
    env["PYTHONPATH"] = str(REPO)
    _studio_answers([sys.executable, "-P", "-m", "modelkit", "studio"], folder, env)
    assert not mark.exists()
