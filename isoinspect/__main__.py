"""Allow ``python -m isoinspect``."""
import sys

from isoinspect.cli.entry import main

sys.exit(main())
