"""``python -m chat`` is the same as the ``mmchat`` command."""

import sys

from chat.cli import main

sys.exit(main())
