"""``python -m pipeline.cli``: the same as the ``imstream`` script."""

import sys

from pipeline.cli.main import main

sys.exit(main())
