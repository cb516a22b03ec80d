"""Packages that pyproject.toml alone cannot declare: the studio's app files.

``streamlit run`` needs app.py, app_pages/, .streamlit/config.toml and assets/ as files next to each
other; they live at the repository root, where people run ``streamlit run app.py``. Mapping the
``modelkit_studio`` package onto the root ships exactly those files (as package data) without
moving them, so ``modelkit studio`` finds them in an installed copy too
(``modelkit.cli.studio.app_folder``). Everything else is in pyproject.toml.
"""

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py


class BuildPy(build_py):
    """Of the root's Python files only app.py belongs to the app (not this setup.py)."""

    def find_package_modules(self, package, package_dir):
        found = super().find_package_modules(package, package_dir)
        return [m for m in found if package != "modelkit_studio" or m[1] == "app"]


setup(
    cmdclass={"build_py": BuildPy},
    packages=[
        *find_packages(include=["modelkit", "modelkit.*", "studio", "studio.*"]),
        "modelkit_studio",
    ],
    package_dir={"modelkit_studio": "."},
    package_data={
        "modelkit_studio": ["app_pages/*.py", ".streamlit/config.toml", "assets/*"],
    },
)
