"""The stack program: per node pool, an ImagePrePuller (and the node pool itself where prepull manages it).

Configuration: the `prepull:*` keys of stacks/Pulumi.<stack>.yaml (typed in Pulumi.yaml).
"""

import sys
from pathlib import Path

# Run from a checkout without installing the package.
sys.path.insert(0, str(Path(__file__).resolve().parent / "components"))

from prepull.stack import main  # noqa: E402

main(stacks_dir=Path(__file__).resolve().parent / "stacks")  # Pulumi.yaml stackConfigDir: the lock files sit beside the stack files
