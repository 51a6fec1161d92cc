"""The read-only web page, its JSON API and change stream (served when `[web] enabled`)."""
