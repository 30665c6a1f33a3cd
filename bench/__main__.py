"""``python -m bench`` (quick, what CI runs) and ``python -m bench --full``."""

import sys

from .runner import main

if __name__ == "__main__":
    sys.exit(main())
