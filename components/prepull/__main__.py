"""``python -m prepull``: see :mod:`prepull.cli`."""

import sys

from .cli import main

sys.exit(main())
