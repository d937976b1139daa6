import sys

from dreamwire.backend.cli import main

sys.exit(main())
