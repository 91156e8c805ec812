"""`python -m py_core.cli sync --config FILE`: the same as the `otp` command."""

import sys

from . import main

sys.exit(main())
