"""``python -m scones_emulator`` is ``python -m scones_emulator.runtimes``."""

import sys

from scones_emulator.runtimes import main

sys.exit(main())
