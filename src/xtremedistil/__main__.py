"""``python -m xtremedistil``: the CLI (what ``torchrun -m xtremedistil distil CONFIG`` launches)."""

import sys

from xtremedistil.cli import main

if __name__ == "__main__":
    sys.exit(main())
