"""Centrapay calls per card: what the pipeline spends per row, by endpoint, under faults,
on an empty account and on one with a long history of earlier transfers.

    .venv/bin/python tests/benchmarks/calls_per_card.py [--rows 2000] [--history 20000]
        [--list-order newest|oldest|both] [--fault-5xx 0.05] [--fault-timeout 0.05]
        [--client-timeout 1] [--timeout-hold 1.5] [--workers 2] [--concurrency 8]
        [--keep-logs DIR]

Each run gets a fresh Postgres database (migrated by Alembic, dropped after), a claimed and
flushed Redis database, the sandbox in its own process with the fault shares given (5xx:
refused, not applied; timeout: applied, then the answer held past the client's timeout),
and real ``distributor worker`` and ``beat`` processes. The ``history`` case first gives
the account ``--history`` earlier loaded-and-transferred cards, already claimed, through
``POST /_sandbox/accounts/{id}/history`` (not in the request log; card numbers no load can
name). Runs: ``empty`` and ``history``, under each ``--list-order`` asked for.

Counted from the sandbox's request log (``GET /_sandbox/ledger/requests``):

- ``untilSettled``: from dispatch until no row of the batch is left to work on;
- ``untilTransferIds``: from then until every sent row has its transfer id (a row may be
  ``sent`` with ``transfer_id`` still NULL when the one-call load-and-transfer's answer was
  lost; the pipeline finds the id afterwards).

Exactness, from the sandbox's ledger and its own transfer records: no card loaded more
than once, none transferred more than once, every sent row's transfer id is the sandbox's
transfer of that row's card. Prints one JSON document; exit status 1 when exactness fails.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

from distributor.batches import batch_counts
from distributor.broker import CeleryRowQueue, make_celery
from distributor.config import Settings
from distributor.constants import UNSETTLED_STATES, RowState
from distributor.db import session_scope
from distributor.models import Row
from distributor.pipeline.queueing import dispatch
from distributor.vault import vault_from_settings

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script: tests.*
from tests.benchmarks import bench_support as bench
from tests.processes import ServiceProcess, free_port

CARD_PREFIX = "2342"
BUCKET_RATE = 100_000.0  # the bucket never holds a call back: calls are counted, not timed
BUCKET_BURST = 1_000
SETTLE_POLL_SECONDS = 0.5
LIST_ORDERS = ("newest", "oldest")


@dataclass(frozen=True, kw_only=True)
class Options:
    """What every run of one invocation shares."""

    rows: int
    fault_5xx: float
    fault_timeout: float
    client_timeout: float
    timeout_hold: float
    latency_ms: float
    workers: int
    concurrency: int
    settle_timeout: float
    ids_timeout: float
    keep_logs: Path | None


@dataclass(frozen=True, kw_only=True)
class Run:
    """One run: how much history the account has, and the sandbox's listing order."""

    case: str
    history: int
    list_order: str


@dataclass(frozen=True, kw_only=True)
class Marks:
    """Positions in the sandbox's request log and moments, as the run went."""

    requests_before: int
    requests_settled: int
    requests_ids: int
    started: float
    settled: float
    ids_done: float
    pending_ids_at_settle: int
    ids_complete: bool


# --- one run ------------------------------------------------------------------------------


def run_once(run: Run, options: Options) -> dict[str, Any]:
    """Set everything up, send the batch, count, tear everything down; the figures."""
    with (
        bench.fresh_migrated_database() as database_url,
        bench.claimed_redis() as redis_url,
        tempfile.TemporaryDirectory(prefix=f"calls-{run.case}-{run.list_order}-") as tmp,
    ):
        log_dir = options.keep_logs / f"{run.case}-{run.list_order}" if options.keep_logs else None
        log_dir = log_dir or Path(tmp)
        log_dir.mkdir(parents=True, exist_ok=True)
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        settings = bench.service_settings(
            database_url=database_url,
            redis_url=redis_url,
            sandbox_url=base_url,
            rate_per_second=BUCKET_RATE,
            burst=BUCKET_BURST,
            concurrency=options.concurrency,
        ).model_copy(update={"centrapay_timeout_seconds": options.client_timeout})
        cards = bench.card_numbers(options.rows, prefix=CARD_PREFIX)
        processes: list[ServiceProcess] = []
        try:
            processes.append(
                bench.start_sandbox_with(
                    port=port,
                    settings={
                        "FAULT_5XX": str(options.fault_5xx),
                        "FAULT_TIMEOUT": str(options.fault_timeout),
                        "FAULT_DROP": "0",
                        "FAULT_429": "0",
                        "TIMEOUT_HOLD_SECONDS": str(options.timeout_hold),
                        "LATENCY_MS": str(options.latency_ms),
                        "RATE_LIMIT": "0",
                        "LIST_ORDER": run.list_order,
                    },
                    log_path=log_dir / "sandbox.log",
                )
            )
            batch_id = bench.store_batch(settings, cards)
            with httpx.Client(
                base_url=base_url + "/_sandbox", timeout=bench.HTTP_TIMEOUT_SECONDS
            ) as control:
                if run.history:
                    made = control.post(
                        f"/accounts/{bench.SANDBOX_ACCOUNT}/history",
                        json={"transfers": run.history},
                    )
                    made.raise_for_status()
                processes += bench.start_workers(
                    settings,
                    count=options.workers,
                    concurrency=options.concurrency,
                    loglevel="INFO",
                    log_dir=log_dir,
                )
                processes.append(bench.start_beat(settings, log_dir=log_dir))
                marks = _send_and_watch(settings, control, batch_id, options)
                requests = control.get("/ledger/requests").json()["items"]
                if options.keep_logs:
                    (log_dir / "sandbox-requests.json").write_text(json.dumps(requests))
                exactness = _exactness(settings, control, batch_id, cards)
                rows = _row_outcomes(settings, batch_id)
        finally:
            bench.stop_all(reversed(processes))
    return _figures(run, options, marks=marks, requests=requests, rows=rows, exactness=exactness)


def _request_count(control: httpx.Client) -> int:
    return int(control.get("/ledger").json()["requestCount"])


def _send_and_watch(
    settings: Settings, control: httpx.Client, batch_id: int, options: Options
) -> Marks:
    """Dispatch the batch; mark the request log when every row is settled, and again when
    every sent row has its transfer id."""
    requests_before = _request_count(control)
    started = time.time()
    queue = CeleryRowQueue(make_celery(settings))
    dispatch(database_url=settings.database_url, queue=queue, batch_id=batch_id)
    deadline = time.monotonic() + options.settle_timeout
    while True:
        with session_scope(settings.database_url) as session:
            counts = batch_counts(session, batch_id)
        if not any(counts.get(state, 0) for state in UNSETTLED_STATES):
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"batch {batch_id} did not settle: {counts}")
        time.sleep(SETTLE_POLL_SECONDS)
    requests_settled, settled = _request_count(control), time.time()
    pending_at_settle = pending = _ids_pending(settings, batch_id)
    deadline = time.monotonic() + options.ids_timeout
    while pending and time.monotonic() < deadline:
        time.sleep(SETTLE_POLL_SECONDS)
        pending = _ids_pending(settings, batch_id)
    return Marks(
        requests_before=requests_before,
        requests_settled=requests_settled,
        requests_ids=_request_count(control),
        started=started,
        settled=settled,
        ids_done=time.time(),
        pending_ids_at_settle=pending_at_settle,
        ids_complete=pending == 0,
    )


def _ids_pending(settings: Settings, batch_id: int) -> int:
    """Rows ``sent`` whose transfer id is not known yet."""
    query = select(func.count()).where(
        Row.batch_id == batch_id, Row.state == RowState.SENT, Row.transfer_id.is_(None)
    )
    with session_scope(settings.database_url) as session:
        return int(session.scalar(query) or 0)


def _row_outcomes(settings: Settings, batch_id: int) -> dict[str, Any]:
    """Rows by final state, and failed rows by error code."""
    failed = (
        select(Row.error_code, func.count())
        .where(Row.batch_id == batch_id, Row.state == RowState.FAILED)
        .group_by(Row.error_code)
    )
    with session_scope(settings.database_url) as session:
        states = {k: v for k, v in batch_counts(session, batch_id).items() if v}
        codes = {str(code): count for code, count in session.execute(failed)}
    return {"rowsByState": states, "failedByErrorCode": dict(sorted(codes.items()))}


def _exactness(
    settings: Settings, control: httpx.Client, batch_id: int, cards: list[str]
) -> dict[str, Any]:
    """Each card loaded and transferred at most once; each sent row's transfer the sandbox's."""
    ledger = control.get("/ledger").json()["cards"]
    empty = {"loads": 0, "transfers": 0}
    counts = [ledger.get(card, empty) for card in cards]
    sent = control.get(f"/accounts/{bench.SANDBOX_ACCOUNT}/transfers").json()["items"]
    transfers_of_card: dict[str, set[str]] = {}
    for item in sent:
        transfers_of_card.setdefault(str(item["cardNumber"]), set()).add(item["id"])
    vault = vault_from_settings(settings)
    query = select(Row.card_number_enc, Row.transfer_id).where(
        Row.batch_id == batch_id, Row.state == RowState.SENT
    )
    with session_scope(settings.database_url) as session:
        sent_rows = list(session.execute(query))
    without_transfer_id = sum(1 for _, transfer_id in sent_rows if transfer_id is None)
    not_the_sandboxs = sum(
        1
        for card_enc, transfer_id in sent_rows
        if transfer_id is not None
        and card_enc is not None
        and transfer_id not in transfers_of_card.get(vault.decrypt(card_enc), set())
    )
    loaded_twice = sum(1 for c in counts if c["loads"] > 1)
    transferred_twice = sum(1 for c in counts if c["transfers"] > 1)
    return {
        "cardsByLoads": bench.histogram(c["loads"] for c in counts),
        "cardsByTransfers": bench.histogram(c["transfers"] for c in counts),
        "cardsLoadedMoreThanOnce": loaded_twice,
        "cardsTransferredMoreThanOnce": transferred_twice,
        "sentRows": len(sent_rows),
        "sentRowsWithoutTransferId": without_transfer_id,
        "sentRowsWhoseTransferIsNotTheSandboxs": not_the_sandboxs,
        "exact": loaded_twice == transferred_twice == without_transfer_id == not_the_sandboxs == 0,
    }


def _figures(
    run: Run,
    options: Options,
    *,
    marks: Marks,
    requests: list[dict[str, Any]],
    rows: dict[str, Any],
    exactness: dict[str, Any],
) -> dict[str, Any]:
    settled = requests[marks.requests_before : marks.requests_settled]
    ids = requests[marks.requests_settled : marks.requests_ids]
    return {
        "case": run.case,
        "history": run.history,
        "listOrder": run.list_order,
        "rows": options.rows,
        **rows,
        "untilSettled": {
            "seconds": round(marks.settled - marks.started, 2),
            **bench.calls_by_endpoint(settled, cards=options.rows),
        },
        "untilTransferIds": {
            "seconds": round(marks.ids_done - marks.settled, 2),
            "pendingAtSettle": marks.pending_ids_at_settle,
            "complete": marks.ids_complete,
            **bench.calls_by_endpoint(ids, cards=options.rows),
        },
        "exactness": exactness,
        "wallSeconds": round(marks.ids_done - marks.started, 2),
    }


# --- command line -------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Run the empty and the history case under each list order asked for; print JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000)
    parser.add_argument("--history", type=int, default=20_000, help="earlier transfers")
    parser.add_argument("--list-order", choices=[*LIST_ORDERS, "both"], default="newest")
    parser.add_argument("--fault-5xx", type=float, default=0.05)
    parser.add_argument("--fault-timeout", type=float, default=0.05)
    parser.add_argument("--client-timeout", type=float, default=1.0, help="seconds")
    parser.add_argument("--timeout-hold", type=float, default=1.5, help="seconds")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--settle-timeout", type=float, default=1_800.0, help="seconds")
    parser.add_argument("--ids-timeout", type=float, default=300.0, help="seconds")
    parser.add_argument("--keep-logs", type=Path, help="write the children's logs here")
    args = parser.parse_args(argv)
    options = Options(
        rows=args.rows,
        fault_5xx=args.fault_5xx,
        fault_timeout=args.fault_timeout,
        client_timeout=args.client_timeout,
        timeout_hold=args.timeout_hold,
        latency_ms=args.latency_ms,
        workers=args.workers,
        concurrency=args.concurrency,
        settle_timeout=args.settle_timeout,
        ids_timeout=args.ids_timeout,
        keep_logs=args.keep_logs,
    )
    orders = LIST_ORDERS if args.list_order == "both" else (args.list_order,)
    runs = [
        Run(case=case, history=history, list_order=order)
        for order in orders
        for case, history in (("empty", 0), ("history", args.history))
    ]
    started = time.time()
    figures = [run_once(run, options) for run in runs]
    document = {
        "benchmark": "calls_per_card",
        "settings": {
            "rows": options.rows,
            "history": args.history,
            "fault5xx": options.fault_5xx,
            "faultTimeout": options.fault_timeout,
            "clientTimeoutSeconds": options.client_timeout,
            "timeoutHoldSeconds": options.timeout_hold,
            "latencyMs": options.latency_ms,
            "workers": options.workers,
            "concurrency": options.concurrency,
            "listOrders": list(orders),
        },
        "runs": figures,
        "wallSeconds": round(time.time() - started, 2),
    }
    print(json.dumps(document, indent=2), flush=True)
    return 0 if all(run["exactness"]["exact"] for run in figures) else 1


if __name__ == "__main__":
    sys.exit(main())
