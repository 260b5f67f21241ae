"""``python -m labkit`` is the ``labkit`` command."""
import sys

from labkit.lab.cli import main

sys.exit(main())
