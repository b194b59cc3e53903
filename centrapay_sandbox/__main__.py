"""``python -m centrapay_sandbox [options]``: run the sandbox in the foreground."""

from __future__ import annotations

import sys

from centrapay_sandbox.cli import main

if __name__ == "__main__":
    sys.exit(main())
