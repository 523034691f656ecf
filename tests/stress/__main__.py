"""``python -m tests.stress``: the same as ``python tests/stress/run.py``."""
import sys

from tests.stress.run import main

sys.exit(main())
