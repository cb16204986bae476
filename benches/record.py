"""RunRecord: the one versioned result file that benchmarks and verification write, reports read.

A record is a JSON document::

    {"schema": "isoinspect.run", "schema_version": 1, "run_id": "...", "command": "...",
     "created": <unix s>, "finished": <unix s or null>, "interrupted": false,
     "machine": {kernel, arch, cpu, cpus, memory_bytes, cgroup_mode, python, commit, ...},
     "versions": {"runc": "1.1.5", ...}, "capabilities": {...}, "config": {...},
     "results": [ {"kind": ..., ...}, ... ]}

Every result has a ``kind``; the kinds and their fields are listed in ``RESULT_KINDS`` (samples
are always in seconds). The file is rewritten atomically after every ``add`` (temp file + rename),
so a crash or Ctrl-C keeps what was measured and a reader never sees half a file. Older schemas
migrate forward on load (version 0 is the ``bench startup --json`` output of before); a record
from a newer isoinspect is refused with a clear message.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from typing import Any, Iterable

from isoinspect.runtime.errors import USAGE_EXIT_CODE, IsoinspectError

SCHEMA = "isoinspect.run"
SCHEMA_VERSION = 1
LEGACY_STARTUP_SCHEMA = "isoinspect.bench.startup/1"
DEFAULT_DIR = "/var/lib/isoinspect/results"
#: a file every record created by this process (and its children) is listed in, one path a line:
#: how `isoinspect compare` learns which records its stages wrote (other runs share the folder)
RECORD_LOG_ENV = "ISOINSPECT_RECORD_LOG"

#: kind -> fields a result of that kind must carry (others are free)
RESULT_KINDS: dict[str, tuple[str, ...]] = {
    # one target's start-up samples; metric: start_to_ready | lifecycle | teardown | ...
    "startup": ("target", "metric", "status"),
    # parallel starts: level = how many at once, containers_per_second
    "concurrency": ("target", "level", "status"),
    # one namespace type created (or destroyed) alone: namespace, op = create | destroy
    "namespace_cost": ("namespace", "op", "status"),
    # one enforcement check: status PASS | FAIL | UNSUPPORTED | ERROR, measured/expected/tolerance
    "verify": ("runtime", "check", "status"),
    # the tracer's own cost; since the tracer process: one per target, paired ratio over
    # ``pairs`` interleaved runs, ``setup`` says how it was measured
    "trace_overhead": ("status",),
    # a traced container start: phases with kernel timestamps
    "trace": ("target", "status"),
    # host syscalls of one isolation unit over one workload's window (benches/exposure.py):
    # total, distinct, per_second, failed_share, top, allowed {seccomp, capabilities, ...}
    "exposure": ("runtime", "workload", "status"),
    # idle instances of one target at one level (bench density): runtime_pss_bytes,
    # cgroup_bytes, daemon_growth_bytes, host_used_bytes, per_instance_bytes {estimate, ci},
    # samples (start seconds of instances 1..N), nth_start_seconds, failure; level None: the
    # target could not run at all (status unsupported | failed, reason)
    "density": ("target", "level", "status"),
    # one test of the workload in one target (bench overhead): status ok | unsupported | error
    # | skipped; samples in seconds per op, value + value_unit as shown, ratio to the host
    "overhead": ("target", "test", "status"),
    # what one running instance of a runtime's workload can reach (``isoinspect isolation``):
    # status ok | unsupported | error, properties {namespaces, capabilities, seccomp, ...,
    # shares_host_kernel, host_syscalls, verdict, sandbox_privileges}, evidence
    "isolation": ("runtime", "status"),
}


class RecordError(IsoinspectError):
    """A record that is missing, corrupt, or from a newer schema."""


def results_dir(directory: str | None = None) -> str:
    """Where records live: the argument, $ISOINSPECT_RESULTS, or /var/lib/isoinspect/results."""
    return directory or os.environ.get("ISOINSPECT_RESULTS") or DEFAULT_DIR


def new_run_id() -> str:
    """Sortable by time, unique under concurrent runs."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(3)


def validate_result(result: dict) -> None:
    """Raise ValueError unless ``result`` has a known kind and that kind's fields."""
    kind = result.get("kind")
    if kind not in RESULT_KINDS:
        raise ValueError(f"unknown result kind {kind!r}; known: {', '.join(RESULT_KINDS)}")
    missing = [f for f in RESULT_KINDS[kind] if f not in result]
    if missing:
        raise ValueError(f"{kind} result lacks {', '.join(missing)}")


def write_json_atomic(path: str, data: Any) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half."""
    from isoinspect.runtime.fsutil import write_atomic

    write_atomic(path, json.dumps(data, separators=(",", ":")).encode(), fsync=True)


class RunRecord:
    """A record being written: ``create``, then ``add`` results as they come, then ``finish``."""

    def __init__(self, path: str, data: dict) -> None:
        self.path = path
        self.data = data

    @classmethod
    def create(cls, command: str, *, directory: str | None = None, config: dict | None = None,
               versions: dict | None = None, capabilities: dict | None = None,
               machine: dict | None = None) -> "RunRecord":
        from isoinspect.benches.machine import machine_info

        folder = results_dir(directory)
        os.makedirs(folder, exist_ok=True)
        run_id = new_run_id()
        data = {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "run_id": run_id,
                "command": command, "created": time.time(), "finished": None,
                "interrupted": False, "machine": machine or machine_info(),
                "versions": dict(versions or {}), "capabilities": dict(capabilities or {}),
                "config": dict(config or {}), "results": []}
        record = cls(os.path.join(folder, f"{run_id}.json"), data)
        record.save()
        log = os.environ.get(RECORD_LOG_ENV)
        if log:
            with open(log, "a") as handle:
                handle.write(os.path.abspath(record.path) + "\n")
        return record

    @property
    def run_id(self) -> str:
        return self.data["run_id"]

    @property
    def results(self) -> list[dict]:
        return self.data["results"]

    def add(self, result: dict) -> dict:
        """Append one result (validated) and write the file."""
        validate_result(result)
        self.data["results"].append(result)
        self.save()
        return result

    def extend(self, results: Iterable[dict]) -> None:
        for result in results:
            validate_result(result)
            self.data["results"].append(result)
        self.save()

    def set(self, **fields: Any) -> None:
        """Set top-level fields (versions, capabilities, config, ...) and write the file."""
        self.data.update(fields)
        self.save()

    def finish(self, interrupted: bool = False) -> None:
        self.data["finished"] = time.time()
        self.data["interrupted"] = bool(interrupted)
        self.save()

    def save(self) -> None:
        write_json_atomic(self.path, self.data)
        from isoinspect.benches import results_index

        results_index.index_record(self.path, self.data)


class ResultSlots:
    """Results added once, then replaced in place as a run goes on (``put`` writes the file,
    so a crash keeps the last complete round)."""

    def __init__(self, record: RunRecord) -> None:
        self.record = record
        self.positions: dict[object, int] = {}

    def put(self, results: Iterable[tuple[object, dict]]) -> None:
        """(key, result) pairs: a known key replaces its result, a new one is appended."""
        stored = self.record.results
        fresh = []
        for key, result in results:
            validate_result(result)
            if key in self.positions:
                stored[self.positions[key]] = result
            else:
                self.positions[key] = len(stored) + len(fresh)
                fresh.append(result)
        stored.extend(fresh)
        self.record.save()


def resolve(ref: str, directory: str | None = None) -> str:
    """A record's path from a path, a run id, a unique run-id prefix, or ``latest``."""
    if os.sep in ref or ref.endswith(".json"):
        if not os.path.exists(ref):
            raise RecordError(f"no run record at {ref}", exit_code=USAGE_EXIT_CODE)
        return ref
    folder = results_dir(directory)
    names = sorted(n[:-5] for n in _listdir(folder) if n.endswith(".json"))
    if ref == "latest":
        if not names:
            raise RecordError(f"no run records in {folder}", exit_code=USAGE_EXIT_CODE)
        return os.path.join(folder, names[-1] + ".json")
    matches = [n for n in names if n == ref] or [n for n in names if n.startswith(ref)]
    if not matches:
        raise RecordError(f"no run record {ref!r} in {folder}", exit_code=USAGE_EXIT_CODE)
    if len(matches) > 1:
        raise RecordError(f"run id {ref!r} is ambiguous: {', '.join(matches[:5])}",
                          exit_code=USAGE_EXIT_CODE)
    return os.path.join(folder, matches[0] + ".json")


def _listdir(folder: str) -> list[str]:
    try:
        return os.listdir(folder)
    except FileNotFoundError:
        return []


def _read(path: str) -> Any:
    try:
        with open(path) as handle:
            return json.load(handle)
    except json.JSONDecodeError as exc:
        raise RecordError(f"run record {path} is corrupt: {exc.msg} at line {exc.lineno}",
                          exit_code=USAGE_EXIT_CODE) from None
    except OSError as exc:
        raise RecordError(f"cannot read run record {path}: {exc.strerror}",
                          exit_code=USAGE_EXIT_CODE) from None


def load(ref: str, directory: str | None = None) -> dict:
    """Read, check and migrate a record (RecordError with one clear line if it can't be used)."""
    path = resolve(ref, directory)
    data = migrate(_read(path), path)
    data.setdefault("_path", path)
    return data


def load_all(ref: str, directory: str | None = None) -> list[dict]:
    """``load``, and also a bundle: a JSON list of records (what `isoinspect compare --json`
    writes, so the files collected from several machines can be reported on directly)."""
    path = resolve(ref, directory)
    data = _read(path)
    if not isinstance(data, list):
        return [load(path)]
    if not data:
        raise RecordError(f"{path} is an empty list of run records", exit_code=USAGE_EXIT_CODE)
    loaded = []
    for number, item in enumerate(data):
        where = f"{path}[{number}]"
        item = migrate(item, where)
        item["_path"] = where
        loaded.append(item)
    return loaded


def migrate(data: Any, path: str = "<record>") -> dict:
    """Bring a record of any known schema to SCHEMA_VERSION; refuse newer or unknown ones."""
    if not isinstance(data, dict):
        raise RecordError(f"run record {path} is corrupt: not a JSON object",
                          exit_code=USAGE_EXIT_CODE)
    if data.get("schema") == LEGACY_STARTUP_SCHEMA:
        data = _from_legacy_startup(data, path)
    if data.get("schema") != SCHEMA:
        raise RecordError(f"{path} is not an isoinspect run record (schema "
                          f"{data.get('schema')!r})", exit_code=USAGE_EXIT_CODE)
    version = data.get("schema_version")
    if not isinstance(version, int):
        raise RecordError(f"run record {path} is corrupt: no schema_version",
                          exit_code=USAGE_EXIT_CODE)
    if version > SCHEMA_VERSION:
        raise RecordError(f"run record {path} has schema version {version}, written by a newer "
                          f"isoinspect; this one reads up to version {SCHEMA_VERSION}",
                          exit_code=USAGE_EXIT_CODE)
    if not isinstance(data.get("results"), list):
        raise RecordError(f"run record {path} is corrupt: no results list",
                          exit_code=USAGE_EXIT_CODE)
    for number, result in enumerate(data["results"]):
        if not isinstance(result, dict):
            raise RecordError(f"run record {path} is corrupt: result {number} is not an object",
                              exit_code=USAGE_EXIT_CODE)
    return data


def _from_legacy_startup(old: dict, path: str) -> dict:
    """Version 0: the JSON of ``bench startup --json`` before RunRecords existed."""
    started = old.get("started") or 0.0
    results = []
    targets = old.get("targets") or {}
    for name, target in (targets.items() if isinstance(targets, dict) else []):
        results.append({"kind": "startup", "target": name,
                        "metric": target.get("measures") or "lifecycle",
                        "status": "ok" if target.get("status") == "ready" else
                        target.get("status", "unknown"), "reason": target.get("reason", ""),
                        "version": target.get("version"), "unit": "s",
                        "samples": target.get("samples") or [],
                        "phases": target.get("phases") or {}})
    base = os.path.basename(path)
    return {"schema": SCHEMA, "schema_version": 1,
            "run_id": base[:-5] if base.endswith(".json") else base,
            "command": "bench startup (legacy record)", "created": started,
            "finished": old.get("finished"), "interrupted": bool(old.get("interrupted")),
            "machine": old.get("machine") or {}, "versions": {}, "capabilities": {},
            "config": old.get("config") or {}, "results": results}
