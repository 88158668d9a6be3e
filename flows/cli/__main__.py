"""``python -m flows.cli`` = ``amtsbote``."""

import sys

from . import main

sys.exit(main())
