"""``python -m gcsampler`` is the ``gcsampler`` command."""

import sys

from gcsampler.cli import main

sys.exit(main())
