"""``python -m shared``: the ``streamduck`` command line."""

from shared.cli import main

if __name__ == "__main__":
    main()
