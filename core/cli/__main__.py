"""`python -m core.cli`: the `gradwatch` command."""

from core.cli.main import main

raise SystemExit(main())
