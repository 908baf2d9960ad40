"""The pack's tests: the pack importable by its package name, and no config noted across tests.

They run from this folder (``python -m pytest`` in the pack folder, with the pack's
requirements-test.txt installed) or from the repository root with its own tests.
``prepull`` must be installed; the header says which one was imported.
"""

import sys
from pathlib import Path

import pytest

PACK = Path(__file__).resolve().parent.parent
# The pack folder itself, whatever it is called, as when the CLI runs it: never its parent.
if str(PACK) not in sys.path:
    sys.path.insert(0, str(PACK))

import prepull  # noqa: E402
import prepull_policies  # noqa: E402


@pytest.fixture(autouse=True)
def forget_noted_configs():
    # The resource policies note their config for pack-config: no test sees another test's.
    prepull_policies.take_noted_configs()
    yield
    prepull_policies.take_noted_configs()


def pytest_report_header(config):
    return f"prepull {prepull.__version__} imported from {Path(prepull.__file__).resolve().parent}"
