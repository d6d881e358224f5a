"""`python3 -m streams.cli`: the `banwatch` command."""

import sys

from streams.cli.main import main

sys.exit(main())
