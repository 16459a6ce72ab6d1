"""The ``streamduck`` command line (Typer + Rich). ``python -m shared`` runs the same app.

Commands: ``run`` (the dev host, ``--dry-run`` for the plan), ``validate-config``, ``status``, ``simulate``,
``demo`` and ``version``. Every command documents itself with ``--help``; expected failures print one
``error:`` line and exit with a documented code (see ``docs/cli.md``).
"""

from shared.cli.main import app, main

__all__ = ["app", "main"]
