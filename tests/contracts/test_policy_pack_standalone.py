"""The policy pack folder on its own, as `pulumi policy publish` uploads it: installed and tested away from the checkout.

Only the files git tracks under policies/ are copied, to a folder not named
policies/ outside the checkout. A fresh virtualenv (no system site-packages)
gets the folder's requirements-test.txt from the package index, with a prepull
wheel built from this checkout standing in for the release the pack pins
(prepull is not on PyPI yet: docs/policies.md, "Publishing"). The pack's own
tests then run inside the copy, in a clean environment, and must all pass,
with ``prepull`` imported from the virtualenv, not from the checkout.

Needs a package index (CI has PyPI): without one the test fails with pip's
reason; it never skips. Warm pip cache: about 10 s.
"""

import os
import re
import subprocess
import sys
import time
from pathlib import Path

from checkout import copy_tracked

ROOT = Path(__file__).resolve().parents[2]
# The package version's one home (pyproject.toml reads it from there too).
VERSION = re.search(r'__version__ = "([^"]+)"', (ROOT / "components/prepull/version.py").read_text())[1]
# What building the prepull wheel reads: the build config, the readme it names, the package.
WHEEL_SOURCES = ("pyproject.toml", "README.md", "components/prepull")


def run(cmd: list, what: str, **kwargs) -> subprocess.CompletedProcess:
    """Run ``cmd``; on failure, fail the test naming ``what`` with the command's output."""
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kwargs)
    assert result.returncode == 0, f"{what} failed (exit {result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def tool_env() -> dict:
    """The caller's environment (pip's cache, index and certificate settings) without Python's own path variables."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONUSERBASE")}


def build_prepull_wheel(tmp_path: Path) -> Path:
    """A wheelhouse holding prepull built from this checkout (sources copied, so the checkout gets no build/ or egg-info)."""
    source, wheelhouse = tmp_path / "prepull-source", tmp_path / "wheelhouse"
    copy_tracked(WHEEL_SOURCES, source)
    run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheelhouse), str(source)],
        "building the prepull wheel (setuptools, its build backend, comes from the package index)",
        env=tool_env(),
    )
    assert [p.name for p in wheelhouse.iterdir()] == [f"prepull-{VERSION}-py3-none-any.whl"]
    return wheelhouse


def install_pack(pack: Path, wheelhouse: Path) -> Path:
    """``pack``/venv with the folder's test requirements, from the index plus ``wheelhouse``; returns its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", "venv"], cwd=pack, check=True, env=tool_env())
    python = pack / "venv" / "bin" / "python"
    # This interpreter's pip installs into the new venv (--python): no pip bootstrap there. --no-compile:
    # pulumi-kubernetes' thousands of modules are not byte-compiled ahead of the few the tests import.
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "-q",
            "--no-compile",
            "--find-links",
            str(wheelhouse),
            "-r",
            "requirements-test.txt",
        ],
        "installing the pack's requirements-test.txt (is a package index reachable? prepull comes from the wheelhouse)",
        cwd=pack,
        env=tool_env(),
    )
    return python


def checkout_test_count() -> int:
    """How many tests the pack's folder holds, collected in the checkout."""
    out = run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "tests"],
        "collecting the pack's tests",
        cwd=ROOT / "policies",
        env=tool_env(),
    ).stdout
    return int(re.search(r"^(\d+) tests? collected", out, re.M).group(1))


def test_the_pack_folder_installs_and_passes_its_tests_on_its_own(tmp_path, capsys):
    started = time.monotonic()
    wheelhouse = build_prepull_wheel(tmp_path)
    pack = tmp_path / "published-pack"  # not named policies/: nothing may depend on the folder's name
    copied = copy_tracked(("policies",), pack, strip="policies/")
    assert "requirements.txt" in copied and not [f for f in copied if "venv/" in f or "__pycache__" in f]
    built = time.monotonic()
    python = install_pack(pack, wheelhouse)
    installed = time.monotonic()
    clean = {"PATH": f"{python.parent}:/usr/bin:/bin", "HOME": str(tmp_path), "LANG": "C.UTF-8"}
    result = subprocess.run(
        [str(python), "-m", "pytest", "-p", "no:cacheprovider"], cwd=pack, env=clean, capture_output=True, text=True, timeout=600
    )
    tested = time.monotonic()
    with capsys.disabled():
        print(
            f"\n[standalone pack] wheel+copy {built - started:.1f}s, venv+install {installed - built:.1f}s, "
            f"tests {tested - installed:.1f}s, total {tested - started:.1f}s"
        )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    # Every test of the folder ran and passed: none skipped, none left behind by the copy.
    assert re.search(rf"^=+ {checkout_test_count()} passed in [\d.]+s", output, re.M), output[-3000:]
    # The header line the pack's conftest.py writes: prepull is the installed release, not the checkout's source.
    origin = Path(re.search(rf"^prepull {re.escape(VERSION)} imported from (.+)$", output, re.M).group(1))
    assert origin.is_relative_to((pack / "venv").resolve()) and "site-packages" in origin.parts, origin
    assert not origin.is_relative_to(ROOT), origin
