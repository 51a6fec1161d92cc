"""The operator's command line: `footyd run`, `check-config`, `status` and the other commands."""
