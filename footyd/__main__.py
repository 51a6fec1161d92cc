"""`python -m footyd` is the `footyd` command."""

from __future__ import annotations

from footyd.cli.main import main

raise SystemExit(main())
