"""``broker ledger verify|prune|export``.

``verify`` trusts nothing stored but the signing keys: for every log (the legacy log of earlier
releases included) it recomputes every leaf from every stored record, rebuilds the tree, compares
every stored subtree hash, checks every checkpoint's signature and root, and the consistency of
each checkpoint with the one before. It stops at the first problem, naming the log, the record
(index and id) or checkpoint, and exits 1.
"""

from __future__ import annotations

import json
import struct
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

from broker.config import Settings
from broker.core.keyring import Keyring
from broker.core.progress import ProgressBar, Tally
from broker.ledger import checkpoints, merkle, reading, storage, views
from broker.ledger import logs as ledger_logs
from broker.storage import keys
from broker.storage.store import Store

CHUNK = 1000


class VerifyFailed(Exception):
    """The ledger does not verify; the message names the first bad record or checkpoint."""


@click.group("ledger", help="disclosure ledger tools")
def ledger() -> None:
    pass


@contextmanager
def _open() -> Iterator[tuple[Settings, Store]]:
    from broker.runtime import configure_logging, open_store

    settings = Settings.from_env()
    configure_logging(settings.log_level, settings.log_format)
    with open_store(settings) as store:
        yield settings, store


# -- verify ---------------------------------------------------------------------------------------


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _record_id(store: Store, log: str, index: int, body: dict[str, Any] | None = None) -> str:
    if body is not None and isinstance(body.get("id"), str):
        return str(body["id"])
    block = keys.ledger_ids(log, index // storage.ID_BLOCK)  # only on failure
    for rid, idx in store.redis.hgetall(block).items():
        if idx == str(index):
            return str(rid)
    return "unknown"  # a pruned record's id may be gone with its body


def _fail(
    store: Store, log: str, index: int, problem: str, body: dict[str, Any] | None = None
) -> VerifyFailed:
    return VerifyFailed(f"log {log}: record {index} (id {_record_id(store, log, index, body)}): {problem}")


def _checkpoint_tokens(store: Store, log: str, total: int) -> Iterator[tuple[int, str]]:
    for start in range(0, total, CHUNK):
        for offset, token in enumerate(
            store.redis.lrange(keys.ledger_checkpoints(log), start, start + CHUNK - 1)
        ):
            yield start + offset, token


def _hidden_from_readers(
    store: Store,
    log: str,
    start: int,
    parsed: list[dict[str, Any] | None],
    listed: dict[str, dict[int, float]],
) -> dict[int, str]:
    """Records missing from a reader view they belong in, or listed there before their own time:
    tampering too, since the person would no longer see a disclosure about them. ``listed`` caches
    each view read so far (index -> ledger time). Returns index -> the first view missing it."""
    wanted: list[tuple[int, float, list[str]]] = []
    for offset, rec in enumerate(parsed):
        try:
            if isinstance(rec, dict):
                at = [key for key, _ in views.entries(rec, log, start + offset, 0.0)]
                wanted.append((start + offset, float(rec["time"]), at))
        except (KeyError, TypeError, ValueError, struct.error):
            continue  # the record checks report it
    missing = sorted({key for _, _, at in wanted for key in at} - listed.keys())
    pipe = store.redis.pipeline(transaction=False)
    for key in missing:
        pipe.execute_command("GET", key, NEVER_DECODE=True)
    for key, raw in zip(missing, pipe.execute() if missing else [], strict=True):
        listed[key] = dict(views.unpack(raw or b"", views.width(key)))
    hidden: dict[int, str] = {}
    for index, record_time, at in wanted:
        for key in at:
            ledger_time = listed[key].get(index)
            if ledger_time is None or ledger_time < record_time:
                hidden[index] = key.split(":v:", 1)[1]
                break
    return hidden


def _sequenced_at(store: Store, log: str, start: int, ids: list[Any]) -> list[str | None]:
    """Where the id map of each record's own block puts the record's id (None: not there)."""
    pipe = store.redis.pipeline(transaction=False)
    for offset, rid in enumerate(ids):
        block = keys.ledger_ids(log, (start + offset) // storage.ID_BLOCK)
        pipe.hget(block, rid if isinstance(rid, str) else "")
    return list(pipe.execute()) if ids else []


def verify(store: Store, jwks: dict[str, Any]) -> dict[str, Any]:
    """Check every log; returns a summary (totals and one per log) or raises :class:`VerifyFailed`."""
    per_log = {log: verify_log(store, jwks, log) for log in ledger_logs.all_logs(store)}
    return {
        "records": sum(v["records"] for v in per_log.values()),
        "pruned": sum(v["pruned"] for v in per_log.values()),
        "checkpoints": sum(v["checkpoints"] for v in per_log.values()),
        "unsigned": sum(v["records"] - (v["latest_checkpoint_size"] or 0) for v in per_log.values()),
        "logs": per_log,
    }


def verify_log(store: Store, jwks: dict[str, Any], log: str) -> dict[str, Any]:
    """Check one log; returns its summary or raises :class:`VerifyFailed` naming the log."""
    r = store.redis
    count = ledger_logs.count(store)
    raw_size = r.get(keys.ledger_size(log))
    if raw_size is not None and not str(raw_size).isdigit():
        raise VerifyFailed(f"log {log}: the tree size {raw_size!r} is not a number")
    size = int(raw_size or 0)
    tree = merkle.MemoryTree()
    if size == 0 and not r.llen(keys.ledger_checkpoints(log)) and not r.exists(keys.ledger_bodies(log, 0)):
        root = checkpoints.b64(merkle.EMPTY_ROOT)
        return {
            "records": 0,
            "pruned": 0,
            "checkpoints": 0,
            "root_hash": root,
            "latest_checkpoint_size": None,
        }
    pruned = 0
    listed: dict[str, dict[int, float]] = {}  # the reader views read so far
    bar = ProgressBar(f"log {log} records")
    for start in range(0, size, storage.BODY_BLOCK):
        idx = [str(i) for i in range(start, min(size, start + storage.BODY_BLOCK))]
        in_block = storage.raw_block(store, log, start // storage.BODY_BLOCK)
        if any(in_block[len(idx) :]):  # a body past the tree's last leaf
            raise _fail(store, log, size, "a record exists beyond the tree size (inserted)")
        raw_bodies: list[bytes | None] = [*in_block[: len(idx)], *[None] * (len(idx) - len(in_block))]
        stored_leaves = storage.read_hashes(store, log, 0, start, start + len(idx))
        pruned_flags = storage.pruned_flags(store, log, start, start + len(idx))
        parsed: list[dict[str, Any] | None] = []
        bodies: list[str | None] = []
        for field, raw in zip(idx, raw_bodies, strict=True):
            try:
                bodies.append(None if not raw else storage.unpack_body(raw).decode())
                parsed.append(json.loads(bodies[-1]) if bodies[-1] is not None else None)
            except (ValueError, storage.LedgerCorrupt):
                raise _fail(store, log, int(field), "the stored record is not JSON (changed)") from None
        ids = [p.get("id") if isinstance(p, dict) else None for p in parsed]
        hidden = _hidden_from_readers(store, log, start, parsed, listed)
        sequenced_at = _sequenced_at(store, log, start, ids)
        for offset, i in enumerate(range(start, start + len(idx))):
            body, rec, stored = bodies[offset], parsed[offset], stored_leaves[offset]
            if body is None:
                if not pruned_flags[offset]:
                    raise _fail(store, log, i, "the record is missing and was not pruned (removed)")
                if stored is None:
                    raise _fail(store, log, i, "pruned, but its leaf hash is missing or malformed")
                pruned += 1
                tree.append(stored)
                continue
            if not isinstance(rec, dict) or not isinstance(rec.get("id"), str):
                raise _fail(store, log, i, "the stored record is not a disclosure record (changed)")
            leaf = merkle.leaf_hash(body.encode())
            if rec.get("index") != i:
                raise _fail(
                    store,
                    log,
                    i,
                    f"the record says it is at index {rec.get('index')} (reordered, "
                    "removed or inserted records)",
                    rec,
                )
            if sequenced_at[offset] != str(i):
                where = (
                    "was never sequenced"
                    if sequenced_at[offset] is None
                    else (f"was sequenced at index {sequenced_at[offset]}")
                )
                raise _fail(store, log, i, f"this record id {where} (inserted or reordered)", rec)
            if storage.canonical(rec) != body.encode():
                raise _fail(store, log, i, "the stored record is not in canonical form (changed)", rec)
            if stored != leaf:
                raise _fail(
                    store, log, i, "the record's hash differs from its stored leaf hash (changed)", rec
                )
            if log != ledger_logs.LEGACY and (
                rec.get("log") != log or ledger_logs.log_of(str(rec.get("person")), count) != log
            ):
                raise _fail(
                    store, log, i, f"the record belongs in log {rec.get('log')!r}, not here (moved)", rec
                )
            if i in hidden:
                raise _fail(
                    store, log, i, f"missing from the reader index {hidden[i]} (hidden from its readers)", rec
                )
            tree.append(leaf)
        bar(start + len(idx), size)
    if any(storage.raw_block(store, log, (size + storage.BODY_BLOCK - 1) // storage.BODY_BLOCK)):
        raise _fail(store, log, size, "a record exists beyond the tree size (inserted)")

    # every stored subtree hash must be what the records give (levels 1-3 are not stored)
    for level in filter(storage.stored_level, range(1, len(tree.levels))):
        expected = tree.levels[level]
        for start in range(0, len(expected), CHUNK):
            got = storage.read_hashes(store, log, level, start, min(len(expected), start + CHUNK))
            for j, value in enumerate(got, start):
                if value != expected[j]:
                    first = j << level
                    raise _fail(
                        store,
                        log,
                        first,
                        f"the stored subtree hash at level {level} index {j} (leaves {first}.."
                        f"{((j + 1) << level) - 1}) differs from the records",
                    )
    inner = sum(len(lv) for level, lv in enumerate(tree.levels) if level and storage.stored_level(level))
    _progress(f"log {log}: verified {inner} stored subtree hashes")

    # checkpoints: signature, root, monotonic, consistent with the previous one
    total = int(r.llen(keys.ledger_checkpoints(log)))
    previous: checkpoints.Checkpoint | None = None
    for position, token in _checkpoint_tokens(store, log, total):
        try:
            cp = checkpoints.verify(token, jwks, position)
        except checkpoints.CheckpointInvalid as exc:
            raise VerifyFailed(f"log {log}: checkpoint {position}: {exc}") from None
        if cp.log != log:
            raise VerifyFailed(f"log {log}: checkpoint {position} is signed for log {cp.log!r}")
        if cp.tree_size > size:
            raise VerifyFailed(
                f"log {log}: checkpoint {position}: signed tree size {cp.tree_size} but the log has only "
                f"{size} records (records removed)"
            )
        if tree.root(cp.tree_size) != cp.root_hash:
            raise VerifyFailed(
                f"log {log}: checkpoint {position} (tree size {cp.tree_size}): the signed root does not "
                "match the records (records changed, removed, reordered or inserted)"
            )
        if previous is not None:
            if cp.tree_size < previous.tree_size:
                raise VerifyFailed(
                    f"log {log}: checkpoint {position}: tree size went down from {previous.tree_size}"
                )
            if previous.tree_size > 0:
                proof = merkle.consistency_proof(tree, previous.tree_size, cp.tree_size)
                if not merkle.verify_consistency(
                    previous.tree_size, cp.tree_size, previous.root_hash, cp.root_hash, proof
                ):
                    raise VerifyFailed(
                        f"log {log}: checkpoint {position} is not consistent with checkpoint {position - 1}"
                    )
        previous = cp
    _progress(f"log {log}: verified {total} checkpoints")
    return {
        "records": size,
        "pruned": pruned,
        "checkpoints": total,
        "root_hash": checkpoints.b64(tree.root()),
        "latest_checkpoint_size": previous.tree_size if previous else None,
    }


VERIFY_HELP = "recompute and check the whole ledger and its checkpoints"


@ledger.command("verify", help=VERIFY_HELP, short_help=VERIFY_HELP)
def verify_command() -> int:
    with _open() as (settings, store):
        keyring = Keyring(settings.signing_keys_file, create=False)
        try:
            summary = verify(store, checkpoints.public_jwks(keyring))
        except (VerifyFailed, storage.LedgerCorrupt) as exc:
            print(f"ledger verify FAILED: {exc}")
            return 1
    unsigned = summary["unsigned"]
    print(
        f"ledger OK: {summary['records']} records ({summary['pruned']} pruned, verified by hash only), "
        f"{summary['checkpoints']} checkpoints verified in {len(summary['logs'])} logs"
        + (f"; {unsigned} records not yet in a checkpoint" if unsigned else "")
    )
    for log, one in summary["logs"].items():
        if one["records"]:
            print(f"  log {log}: {one['records']} records, root {one['root_hash']}")
    return 0


# -- prune ----------------------------------------------------------------------------------------


def prune(store: Store, cutoff: float) -> int:
    """Remove the bodies of records whose ledger time is before ``cutoff`` (unix seconds) in every
    log, and their entries from the reader views; leaf hashes and the trees stay."""
    return sum(prune_log(store, log, cutoff) for log in ledger_logs.all_logs(store))


def prune_log(store: Store, log: str, cutoff: float) -> int:
    """One log: every view drops its entries before ``cutoff`` (a prefix, ``ledger_view_cut.lua``);
    the records the person views dropped (each record is in exactly one) lose their bodies and their
    id entries. Records as recent as one still waiting in a journal are kept (``storage.waiting_since``)
    until a later run. Work in proportion to what is pruned, not to the log."""
    r = store.redis
    waiting = storage.waiting_since(store, log)
    if waiting is not None:
        cutoff = min(cutoff, waiting)
    size = storage.size(store, log)
    cut = store.lua("ledger_view_cut")
    old: set[int] = set()
    for key in sorted(r.scan_iter(match=keys.ledger("v:*", log), count=CHUNK)):
        removed_from_view = cut(keys=[key], args=[views.width(key), repr(cutoff)])
        if views.width(key) == views.PERSON_WIDTH:
            old.update(int(i) for i in removed_from_view)
    removed = 0
    bar = ProgressBar("pruning")
    todo = sorted(old)
    blocks: set[int] = set()
    for start in range(0, len(todo), CHUNK):
        idx = todo[start : start + CHUNK]
        bodies = storage.read_raw_bodies(store, log, idx)
        pipe = r.pipeline(transaction=True)  # all the log's keys: one slot
        queued = 0
        for i, body in zip(idx, bodies, strict=True):
            if not body:
                continue
            try:
                rec = json.loads(storage.unpack_body(body))
                rec_id = str(rec["id"])
            except (ValueError, TypeError, KeyError, storage.LedgerCorrupt):
                _progress(f"record {i} is not a valid record; left alone (run `broker ledger verify`)")
                continue
            storage.drop_body(pipe, log, i)
            pipe.setbit(keys.ledger_pruned_bits(log), i, 1)
            # no journal can hold it again; a void for it finds no body to correct either way
            pipe.hdel(keys.ledger_ids(log, i // storage.ID_BLOCK), rec_id)
            pipe.hdel(keys.ledger_voided(log), rec_id)  # its correction mark: nothing shows it now
            blocks.add(storage.body_at(i)[0])
            queued += 1
        if queued:
            pipe.execute()
            removed += queued
        bar(idx[-1] + 1, size)
    for block in sorted(blocks):
        storage.drop_block_if_pruned(store, log, block)
    if size:
        bar(size, size)
    return removed


PRUNE_HELP = "remove record bodies older than the retention (hashes stay)"


@ledger.command("prune", help=PRUNE_HELP, short_help=PRUNE_HELP)
@click.option(
    "--before",
    type=int,
    metavar="DAYS",
    help="prune records older than DAYS days (default BROKER_LEDGER_RETENTION_DAYS)",
)
def prune_command(before: int | None) -> int:
    with _open() as (settings, store):
        days = settings.ledger_retention_days if before is None else before
        if days < 0:
            print("broker ledger prune: --before must be 0 or more days", file=sys.stderr)
            return 2
        removed = prune(store, time.time() - days * 86400)
    print(f"pruned {removed} records older than {days} days (their leaf hashes stay in the tree)")
    return 0


# -- export ---------------------------------------------------------------------------------------


WHO = ("person", "app", "org")


class ExportCommand(click.Command):
    """Exactly one of ``--person``, ``--app``, ``--org``, checked while parsing (so a command that
    cannot run is a usage error before anything opens the store)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        rest = super().parse_args(ctx, args)
        if not ctx.resilient_parsing:
            given = [f"--{name}" for name in WHO if ctx.params.get(name) is not None]
            if not given:
                raise click.UsageError("one of the arguments --person --app --org is required", ctx)
            if len(given) > 1:
                raise click.UsageError(f"argument {given[1]}: not allowed with argument {given[0]}", ctx)
        return rest


@ledger.command("export", cls=ExportCommand, help="export records of a person, an app or an org")
@click.option("--person", metavar="UID")
@click.option("--app", metavar="CLIENT_ID")
@click.option("--org", metavar="ORG_ID")
@click.option("--format", "fmt", type=click.Choice(("ndjson", "csv")), default="ndjson")
@click.option("--since", metavar="SINCE", help="unix seconds or ISO-8601")
@click.option("--until", metavar="UNTIL", help="unix seconds or ISO-8601")
def export_command(
    person: str | None, app: str | None, org: str | None, fmt: str, since: str | None, until: str | None
) -> int:
    from broker.errors import ValidationFailed

    view, subject = next((v, s) for v, s in zip(WHO, (person, app, org), strict=True) if s is not None)
    try:
        filters = reading.parse_filters({k: v for k, v in (("since", since), ("until", until)) if v})
    except ValidationFailed as exc:
        print(f"broker ledger export: {exc.detail}: {exc.fields}", file=sys.stderr)
        return 2
    with _open() as (_settings, store):
        records = reading.iterate(store, view, subject, filters)
        tally = Tally("exported")

        def counted() -> Iterator[dict[str, Any]]:
            for record in records:
                tally.step()
                yield record

        lines = reading.ndjson_lines(counted()) if fmt == "ndjson" else reading.csv_lines(counted())
        for line in lines:
            sys.stdout.write(line)
    sys.stdout.flush()
    tally.finish(f"exported {tally.count} records of {view} {subject} as {fmt}")
    return 0
