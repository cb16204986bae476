"""How a measuring command hands its results back (exposure, isolation): the run record's id
and path with the results as JSON to a file or stdout (``-``), else the table and the path."""

from __future__ import annotations

import json
import sys


def publish(record, results: list[dict], json_out: str | None, table: str) -> None:
    """``results``: the record's result dicts; ``table``: the text shown without ``--json -``."""
    document = {"run_id": record.run_id, "path": record.path, "results": results}
    if json_out == "-":
        sys.stdout.write(json.dumps(document, indent=1) + "\n")
        return
    if json_out:
        with open(json_out, "w") as handle:
            json.dump(document, handle, indent=1)
    sys.stdout.write(table + "\n")
    sys.stdout.write(f"record: {record.path}\n")
