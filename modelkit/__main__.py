import sys

from modelkit.cli.main import main

sys.exit(main())
