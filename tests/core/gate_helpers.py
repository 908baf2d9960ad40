"""What the tests of the gate's untaint step and of the pull-retry watchdog share.

Both read the objects ``prepull.manifests()`` renders (test_gate.py, test_retry.py) and run their
step's shell script under busybox sh as the pod does (test_gate.py, test_retry_script.py).
"""

import shutil
from pathlib import Path

import pytest


def of_kind(objs, kind):
    return [o for o in objs if o["kind"] == kind]


def one(objs, kind):
    found = of_kind(objs, kind)
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def pod(ds):
    return ds["spec"]["template"]["spec"]


def busybox_shell(tmp_path: Path) -> str:
    """A ``sh`` in ``tmp_path`` that is busybox (its applet by that name), or the test skipped without busybox.

    The pods run their scripts with busybox sh, whose own ``sleep`` the fake on PATH cannot replace.
    """
    busybox = shutil.which("busybox")
    if busybox is None:
        pytest.skip("busybox is not installed (Debian: busybox-static; .ci/run installs it)")
    shell = tmp_path / "sh"
    shell.symlink_to(busybox)
    return str(shell)
