"""What `pip install` of the repository ships, read from pyproject.toml (no build here: see the note)."""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_package_ships_py_typed():
    """PEP 561: without the marker, users' type checkers ignore the package's annotations.

    Checked by building a wheel once by hand (`pip wheel --no-deps .` lists prepull/py.typed);
    here, that the marker exists and setuptools is told to include it.
    """
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert (ROOT / config["package-dir"][""] / "prepull" / "py.typed").is_file()
    assert "py.typed" in config["package-data"]["prepull"]
