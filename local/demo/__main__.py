"""``python -m local.demo`` is ``python -m local demo``."""

import sys

from local.demo.cli import main

sys.exit(main())
