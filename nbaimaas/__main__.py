"""``python -m nbaimaas ...`` is the ``nbaimaas`` command."""

import sys

from .cli import main

sys.exit(main())
