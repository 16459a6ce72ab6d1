"""``streamduck dashboard``: a small web dashboard over the engagement warehouse, the leaderboard and the
Event Hubs mappings, served by the standard library (no extra dependencies).

- :mod:`shared.dashboard.data` reads the stores (never writes to them) and validates the parameters;
- :mod:`shared.dashboard.server` serves the page and the JSON endpoints;
- :mod:`shared.dashboard.page` is the single page, from ``static/`` (HTML, CSS, vanilla JavaScript, SVG bars).

The command itself (listen, print the address, stop on Ctrl+C) is :mod:`shared.cli.dashboard`.

See ``docs/dashboard.md``.
"""
