"""``modelkit studio`` finds the app beside the modelkit that runs, never in the current folder:
``python -m modelkit studio`` puts that folder first on ``sys.path``, and a folder of photos from
elsewhere holding a ``modelkit_studio/`` package got its app.py started without the app's
settings (issue #29, second probe)."""

from __future__ import annotations

import sys
from pathlib import Path

import modelkit
from modelkit.cli.studio import app_folder, studio_command

REAL = Path(modelkit.__file__).resolve().parents[1]


def test_a_modelkit_studio_package_in_the_current_folder_is_not_the_app(tmp_path, monkeypatch):
    fake = tmp_path / "modelkit_studio"
    (fake / "app_pages").mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "app.py").write_text("raise SystemExit('the untrusted folder ran')\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", ["", str(tmp_path), *sys.path])  # as `python -m` has it
    monkeypatch.delitem(sys.modules, "modelkit_studio", raising=False)

    folder = app_folder()

    assert folder.resolve() == REAL
    assert fake not in (folder, *folder.parents)
    assert studio_command()[5] == str(REAL / "app.py")
