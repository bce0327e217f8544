"""``python -m kpose`` runs the command line."""

import sys

from kpose.cli import main

sys.exit(main())
