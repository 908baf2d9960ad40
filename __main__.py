"""The stack program: per node pool, an ImagePrePuller (and the node pool itself where prepull manages it).

Configuration: the `prepull:*` keys of stacks/Pulumi.<stack>.yaml (typed in Pulumi.yaml).
"""

import sys
from pathlib import Path

import pulumi

# Run from a checkout without installing the package.
sys.path.insert(0, str(Path(__file__).resolve().parent / "components"))

from prepull.run_error import PrePullRunError  # noqa: E402
from prepull.program import main  # noqa: E402

# The language host's exit code for "the user was already shown an actionable message".
SHOWN_TO_USER = 32

try:
    main(stacks_dir=Path(__file__).resolve().parent / "stacks")  # Pulumi.yaml stackConfigDir: the lock files sit beside the stack files
except PrePullRunError as err:
    if __name__ != "__main__":  # run by a test or a tool (runpy's default name): the error as it is
        raise
    # Run by the language host: a bad stack config, found before anything is registered, shown as our
    # one line and nothing else (raised on, the host would add "program exited with non-zero exit code: 1").
    pulumi.log.error(str(err))
    sys.exit(SHOWN_TO_USER)
