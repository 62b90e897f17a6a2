"""`python -m cnn_core ...`: the command line (see `cnn_core.cli`)."""

import sys

from cnn_core.cli import main

sys.exit(main())
