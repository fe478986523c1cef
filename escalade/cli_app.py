"""The ``escalade app`` sub-command: the design explorer (``escalade.app``) on 127.0.0.1."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

__all__ = ["add_parser", "cmd_app"]

#: The study the explorer opens without a file argument.
DEFAULT_STUDY = "cart_rr_heme.yaml"


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add the ``app`` sub-command to the ``escalade`` parser."""
    a = sub.add_parser("app", help="the design explorer: edit a study, run it and compare designs in a browser",
                       description="Serve the design explorer (Shiny for Python) on http://127.0.0.1:PORT, "
                                   "loopback only. Needs the app extra: pip install 'escalade[app]'.")
    a.add_argument("study", nargs="?", help="study file (YAML) to open (default: the shipped CAR-T example)")
    a.add_argument("--port", type=int, default=8050, help="port on 127.0.0.1 (default 8050)")
    a.add_argument("--no-browser", action="store_true", help="do not open a web browser")
    a.set_defaults(func=cmd_app)


def cmd_app(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """Run ``escalade app``: check the study file, then serve until interrupted."""
    from importlib import resources

    from escalade.api import Study
    from escalade.scenarios.errors import ConfigError

    if not 0 < args.port < 65536:
        raise ConfigError("--port", args.port, "a port number in 1..65535, e.g. --port 8050")
    try:
        from escalade.app import serve
        import shiny  # noqa: F401
    except ImportError:
        raise ConfigError("escalade app", "without Shiny for Python",
                          "install the app extra: pip install 'escalade[app]'") from None
    path = args.study or str(resources.files("escalade.scenarios") / DEFAULT_STUDY)
    study = Study.from_yaml(path)
    print(f"escalade app: serving {path} on http://127.0.0.1:{args.port} (Ctrl-C stops)", flush=True)
    serve(study, port=args.port, launch_browser=not args.no_browser)
    return 0
