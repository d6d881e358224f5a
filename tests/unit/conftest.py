"""Unit-test configuration: hypothesis profiles.

Each property sets its own `max_examples` (a few seconds each) and `deadline=None`. The
profile decides where examples come from: `dev` (default) explores new ones every run and
remembers failures in the local example database; `ci` (`HYPOTHESIS_PROFILE=ci`) is
derandomized, so a red CI run replays identically on a laptop.
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("dev", print_blob=True)
settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))
