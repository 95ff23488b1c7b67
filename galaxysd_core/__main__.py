import sys

from galaxysd_core.cli import main

sys.exit(main())
