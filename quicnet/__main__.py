"""``python -m quicnet``: the ``quicnet`` command."""

from quicnet.cli.main import main

raise SystemExit(main())
