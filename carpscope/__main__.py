import sys

from carpscope.cli import main

sys.exit(main())
