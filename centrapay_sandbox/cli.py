"""The sandbox's one command line: ``python -m centrapay_sandbox [options]``.

``distributor sandbox`` hands its arguments to ``main`` unchanged. Each option overrides
the SANDBOX_* variable of the same name; see ``--help``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from pydantic import ValidationError

from centrapay_sandbox.config import SandboxSettings, get_sandbox_settings
from centrapay_sandbox.errors import ConfigError
from centrapay_sandbox.server import serve

PROG = "python -m centrapay_sandbox"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"

OPTIONS = {
    "host": (str, "address to listen on"),
    "port": (int, "port to listen on"),
    "latency_ms": (float, "latency added to every /api request, ms"),
    "rate_limit": (float, "requests/second per API key, 0 = unlimited"),
    "rate_burst": (int, "requests a key may send at once"),
    "fault_5xx": (float, "share of /api requests answered 5xx, not applied"),
    "fault_timeout": (float, "share applied, then the answer withheld"),
    "fault_drop": (float, "share applied, then the connection closed"),
    "fault_429": (float, "share answered 429, not applied"),
    "timeout_hold_seconds": (float, "how long a timeout fault withholds the answer"),
    "page_size": (int, "items per listing page"),
    "cards": (Path, "card catalogue file (JSON)"),
    "time_scale": (float, "how many times faster than real time the clock runs"),
    "list_order": (str, "order of every listing: newest (first) or oldest"),
    "single_call": (str, "true or false: POST /api/external-assets may carry assetTransfer"),
}
"""Every setting but ``api_keys`` (``--api-key``, repeatable): its type and help."""


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    """The options: one per setting, named after it (``fault_5xx`` -> ``--fault-5xx``)."""
    parser = argparse.ArgumentParser(
        prog=prog, description="Run the local Centrapay sandbox API in the foreground."
    )
    for name, (kind, text) in OPTIONS.items():
        option = "--" + name.replace("_", "-")
        parser.add_argument(option, type=kind, help=f"{text} (SANDBOX_{name.upper()})")
    parser.add_argument(
        "--api-key",
        action="append",
        dest="api_keys",
        help="key:accountId the sandbox accepts, repeatable (SANDBOX_API_KEYS)",
    )
    return parser


def main(argv: list[str] | None = None, *, prog: str = PROG) -> int:
    """Parse the options, then serve until interrupted; the exit code."""
    given = {
        key: value
        for key, value in vars(build_parser(prog).parse_args(argv)).items()
        if value is not None
    }
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    try:
        settings = SandboxSettings.model_validate(get_sandbox_settings().model_dump() | given)
        serve(settings)
    except ValidationError as exc:
        first = exc.errors()[0]
        print(f"invalid option: {first['loc'][0]}: {first['msg']}", file=sys.stderr)
        return 2
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    return 0
