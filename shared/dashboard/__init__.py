"""``streamduck dashboard``: a small web dashboard over the engagement warehouse, the leaderboard and the
Event Hubs mappings, served by the standard library (no extra dependencies).

- :mod:`shared.dashboard.data` reads the stores (never writes to them) and validates the parameters;
- :mod:`shared.dashboard.server` serves the page and the JSON endpoints;
- :mod:`shared.dashboard.page` is the single static page (vanilla JavaScript, SVG bars).

See ``docs/dashboard.md``.
"""
