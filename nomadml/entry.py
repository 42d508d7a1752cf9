"""The `nomadml` console script. `--version` is answered before anything heavy is
imported (click included), so the most common probe starts as fast as Python can."""

from __future__ import annotations

import sys


def run() -> None:
    if sys.argv[1:] == ["--version"]:
        from nomadml import __version__

        sys.stdout.write(f"nomadml, version {__version__}\n")
        return
    from nomadml.cli.main import main

    main()
