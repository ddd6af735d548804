import sys

from daemon.simulator import main

sys.exit(main())
