"""``python -m prepull``: see :mod:`prepull.cli.main`."""

import sys

from prepull.cli.main import main

sys.exit(main())
