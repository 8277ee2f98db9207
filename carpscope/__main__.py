import sys

from carpscope.entry import main

sys.exit(main())
