"""Running the stack program (__main__.py) under the mocks of conftest.run_program."""

import runpy
from pathlib import Path

from prepull import PrePullInputError

MAIN = Path(__file__).resolve().parent.parent / "__main__.py"


def run_main_expecting_error(run_program, config: dict) -> tuple:
    """Run __main__.py with ``config``; return (the PrePullInputError it raised, the Run)."""
    seen = {}

    def program():
        try:
            runpy.run_path(str(MAIN))
        except PrePullInputError as err:
            seen["error"] = err

    run = run_program(program, config=config)
    assert "error" in seen, "expected a PrePullInputError"
    return seen["error"], run
