"""``python -m distributor.centrapay.sandbox [options]``: run the sandbox in the foreground.

Options override the SANDBOX_* settings; see ``--help``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from pydantic import ValidationError

from distributor.centrapay.sandbox.server import serve
from distributor.config import SandboxSettings, get_sandbox_settings
from distributor.errors import ConfigError

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


def main(argv: list[str] | None = None) -> int:
    """Parse the options, then serve until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m distributor.centrapay.sandbox")
    for name, (kind, text) in OPTIONS.items():
        parser.add_argument("--" + name.replace("_", "-"), type=kind, help=text)
    parser.add_argument(
        "--api-key", action="append", dest="api_keys", help="key:accountId (repeatable)"
    )
    given = {
        key: value for key, value in vars(parser.parse_args(argv)).items() if value is not None
    }
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        settings = SandboxSettings.model_validate(get_sandbox_settings().model_dump() | given)
        serve(settings)
    except ValidationError as exc:
        print(
            f"invalid option: {exc.errors()[0]['loc'][0]}: {exc.errors()[0]['msg']}",
            file=sys.stderr,
        )
        return 2
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
