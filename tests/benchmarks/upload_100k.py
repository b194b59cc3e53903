"""How long `distributor upload` takes, and how much memory, for a file of 100,000 rows.

    .venv/bin/python tests/benchmarks/upload_100k.py [--rows 100000 --invalid-every 50]

Writes a CSV in a temporary directory (quoted messages with commas and quotes, local
and +64 numbers, an email every so often, one invalid row in ``--invalid-every``, one
duplicate card in 1,000), creates and migrates a fresh Postgres database, runs
`distributor upload --no-start` on the file as a child process (ingest only: no Redis
needed), then drops the database. Prints JSON: rows, exit code, wall time in seconds, the
child's peak RSS in MB, rows per second, the target and whether it was met.
Exits 1 when the target is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from distributor.db import dispose_engines

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script: tests.*
from tests.benchmarks import bench_support as bench

TARGET_SECONDS = 20.0
TARGET_RSS_MB = 300.0
DISTRIBUTOR = Path(sys.executable).parent / "distributor"


def write_csv(path: Path, *, rows: int, invalid_every: int) -> None:
    """A header and ``rows`` rows, each with its own card; every ``invalid_every``-th invalid."""
    with path.open("w", newline="") as out:
        out.write("recipientAlias,cardNumber,pin,message\r\n")
        for i in range(rows):
            if i % invalid_every == invalid_every - 1:
                recipient = "not-a-phone"
            elif i % 10 == 0:
                recipient = f"person{i}@example.com"
            elif i % 2:
                recipient = f"+6422{i:07d}"
            else:
                recipient = f"021 {i // 10_000:03d} {i % 10_000:04d}"
            card = 23_400_000_000 + (i - 1 if i % 1_000 == 999 else i)  # some duplicates
            message = f'"Kia ora {i}, here\'s your ""giftcard"""'
            out.write(f"{recipient},{card},{1000 + i % 9000},{message}\r\n")


def run(*, rows: int, invalid_every: int) -> dict[str, object]:
    """Generate, upload and measure; the database is dropped whatever happens."""
    with bench.fresh_migrated_database() as url, tempfile.TemporaryDirectory() as tmp:
        dispose_engines()  # the migration's pooled connections, closed before the timed upload
        path = Path(tmp) / "cards.csv"
        write_csv(path, rows=rows, invalid_every=invalid_every)
        env = {**os.environ, "DATABASE_URL": url, "DISTRIBUTOR_SECRET_KEY": bench.SECRET_KEY}
        started = time.perf_counter()
        finished = subprocess.run(
            [str(DISTRIBUTOR), "upload", str(path), "--no-start"],
            env=env,
            cwd=tmp,
            capture_output=True,
            text=True,
            check=False,
        )
        seconds = time.perf_counter() - started
        file_mb = path.stat().st_size / 1e6
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # KiB on Linux
    return {
        "rows": rows,
        "file_mb": round(file_mb, 1),
        "exit_code": finished.returncode,
        "seconds": round(seconds, 2),
        "peak_rss_mb": round(peak_mb, 1),
        "rows_per_second": round(rows / seconds),
        "target": {"seconds": TARGET_SECONDS, "peak_rss_mb": TARGET_RSS_MB},
        "met": finished.returncode == 0 and seconds < TARGET_SECONDS and peak_mb < TARGET_RSS_MB,
        "stderr": finished.stderr.strip()[-500:],
    }


def main() -> None:
    """Parse arguments, run once, print JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--invalid-every", type=int, default=50)
    args = parser.parse_args()
    result = run(rows=args.rows, invalid_every=args.invalid_every)
    print(json.dumps(result, indent=2))
    sys.exit(0 if result["met"] else 1)


if __name__ == "__main__":
    main()
