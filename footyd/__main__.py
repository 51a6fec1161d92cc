"""`python -m footyd` is the `footyd` command."""

from __future__ import annotations

from footyd.cli import main

raise SystemExit(main())
