import sys

from imsim.cli import main

sys.exit(main())
