"""This checkout's files as a new clone would have them: what git tracks, plus new files it does not ignore."""

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def copy_tracked(paths: tuple, dest: Path, strip: str = "") -> list:
    """Copy the files git tracks (or would: untracked, not ignored) under ``paths`` (all, when empty) to ``dest``.

    The ``strip`` prefix is taken off each path.

    Returns the copied names, relative to ``dest``.
    """
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", *paths],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    files = [f for f in listed if f and (ROOT / f).is_file()]  # a file deleted but not yet staged is still listed
    for name in files:
        target = dest / name.removeprefix(strip)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)
    return [name.removeprefix(strip) for name in files]
