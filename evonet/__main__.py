import sys

from evonet.cli import main

sys.exit(main())
