"""``python -m patterns_demo`` is ``python -m local demo``."""

import sys

from patterns_demo.cli import main

sys.exit(main())
