"""From a run's end to its signed receipt, and what signing costs. Run: python -m bench.bench_receipts

Both parts run in one ``EngineBench`` (fresh ``mc_bench``, an MC worker that also listens
on ``mc.receipts``) on a 3-step chain workflow (``extract -> transform -> load``, echo).

**(b) end to receipt** (first, on idle workers): ``execution_create``, then wait for the run
to succeed and for its execution receipt to be signed. Latency = ``Receipt.signed_at`` -
``Execution.finished_at``, both written by the worker (same machine, same clock): the
receipt row made in the run's final transaction, ``receipts.sign`` sent on commit, taken
from ``mc.receipts`` by the other pool process, ``receipt_sign``. One run at a time.

**(a) signing latency**, in this process: the worker stops consuming ``mc.receipts``
(``cancel_consumer``), SIGN_WARMUP + SIGN_SAMPLES runs go through it, their ``receipts.sign``
messages are purged, and this process signs the unsigned receipts one by one with
``receipt_sign`` (signer, chain lock, sequence, statement from the database, DSSE, save,
commit). Beside each one, taking turns: a bare ``cryptography``
``private_key.sign(pae, ec.ECDSA(hashes.SHA256()))`` (P-256, a key made once) of the very
bytes that receipt's signature covers (the DSSE PAE of its payload). For information, the
parts timed on their own afterwards: ``get_signer``, ``statement_for``, ``sign_statement``.

Target: end-to-receipt p95 < 250 ms (sprint plan). The ratio to bare ECDSA is for reading.
"""

from __future__ import annotations

import base64
import socket
import time
from typing import Any

from .engine_setup import EngineBench, describe, echo, epoch, manifest, verdict
from .harness import Result, environment, print_rows, print_table, summarize, write_json

SAMPLES = 100
WARMUP = 10
SIGN_SAMPLES = 200
SIGN_WARMUP = 10
TARGET_P95_MS = 250.0
RECEIPTS_QUEUE = "mc.receipts"


def chain_manifest() -> dict[str, Any]:
    return manifest("bench-receipts", [echo("extract"), echo("transform", ["extract"]), echo("load", ["transform"])])


def receipt_wait(execution_id: Any, *, timeout: float = 30, interval: float = 0.01) -> Any:
    """Poll until the run's execution receipt is signed; return it (a few columns only)."""
    from receipts.choices import ReceiptKind
    from receipts.models import Receipt

    deadline = time.monotonic() + timeout
    while True:
        receipt = (
            Receipt.objects.filter(execution_id=execution_id, kind=ReceiptKind.EXECUTION)
            .only("id", "created_at", "signed_at")
            .first()
        )
        if receipt is not None and receipt.signed_at is not None:
            return receipt
        if time.monotonic() > deadline:
            raise TimeoutError(f"the receipt of execution {execution_id} is not signed after {timeout} s")
        time.sleep(interval)


def end_to_receipt_sample(bench: EngineBench, workflow: Any) -> dict[str, float]:
    """One run, in ms: finished -> signed, and its two parts."""
    execution, _ = bench.execution_start(workflow)
    execution = bench.execution_wait(execution.pk, interval=0.01)
    receipt = receipt_wait(execution.pk)
    finished, created, signed = epoch(execution.finished_at), epoch(receipt.created_at), epoch(receipt.signed_at)
    return {
        "end_to_receipt": (signed - finished) * 1000,
        "finished_to_row": (created - finished) * 1000,
        "row_to_signed": (signed - created) * 1000,
    }


def receipts_consumer(bench: EngineBench, *, on: bool) -> None:
    """Make the MC worker start or stop taking ``receipts.sign`` messages (Celery remote control)."""
    from mc_project.celery import app

    destination = [f"{bench.mc_worker.name}@{socket.gethostname()}"]
    if on:
        replies = app.control.add_consumer(RECEIPTS_QUEUE, destination=destination, reply=True, timeout=5)
    else:
        replies = app.control.cancel_consumer(RECEIPTS_QUEUE, destination=destination, reply=True, timeout=5)
    if not replies:
        raise RuntimeError(f"the MC worker did not answer {'add' if on else 'cancel'}_consumer {RECEIPTS_QUEUE}")


def unsigned_receipts(bench: EngineBench, workflow: Any, count: int) -> list[Any]:
    """``count`` runs' receipts, left unsigned: the worker does not consume mc.receipts meanwhile."""
    from mc_project.celery import app
    from receipts.models import Receipt

    receipts_consumer(bench, on=False)
    ids = []
    for _ in range(count):
        execution, _ = bench.execution_start(workflow)
        bench.execution_wait(execution.pk, interval=0.01)
        ids.append(execution.pk)
    with app.connection_for_write() as conn:
        conn.default_channel.queue_purge(RECEIPTS_QUEUE)
    rows = {r.execution_id: r.pk for r in Receipt.objects.filter(execution_id__in=ids, signed_at__isnull=True)}
    if len(rows) != count:
        raise RuntimeError(f"expected {count} unsigned receipts, found {len(rows)}")
    return [rows[execution_id] for execution_id in ids]


def signing_samples(receipt_ids: list[Any]) -> dict[str, list[float]]:
    """Sign each receipt with ``receipt_sign``, then bare-sign the same PAE bytes; ms per call."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    from receipts.models import Receipt
    from receipts.services import receipt_sign, statement_for
    from receipts.signing.dsse import PAYLOAD_TYPE, pae, sign_statement
    from receipts.signing.runtime import get_signer

    bare_key = ec.generate_private_key(ec.SECP256R1())
    samples: dict[str, list[float]] = {}

    def add(name: str, start_ns: int) -> None:
        samples.setdefault(name, []).append((time.perf_counter_ns() - start_ns) / 1e6)

    for receipt_id in receipt_ids:
        start = time.perf_counter_ns()
        receipt_sign(receipt_id)
        add("receipt_sign", start)
        receipt = Receipt.objects.get(pk=receipt_id)
        envelope: dict[str, Any] = receipt.envelope or {}
        payload = base64.b64decode(envelope["payload"])
        samples.setdefault("payload_bytes", []).append(len(payload))
        data = pae(PAYLOAD_TYPE, payload)
        start = time.perf_counter_ns()
        bare_key.sign(data, ec.ECDSA(hashes.SHA256()))
        add("bare_sign", start)
        # The parts, each called again on its own (the receipt now has its sequence and link).
        start = time.perf_counter_ns()
        signer = get_signer()
        add("get_signer", start)
        start = time.perf_counter_ns()
        statement = statement_for(receipt)
        add("statement_for", start)
        start = time.perf_counter_ns()
        sign_statement(statement, signer)
        add("sign_statement", start)
    return samples


def main() -> None:
    """Measure, print, compare with the target, and save bench/results/receipts.json."""
    with EngineBench("receipts") as bench:
        from receipts.verification import chain_verify

        workflow = bench.workflow_published(chain_manifest())
        bench.purge()
        print(f"[receipts] end to receipt: {WARMUP} warm-up + {SAMPLES} runs, one at a time ...", flush=True)
        e2e: dict[str, list[float]] = {}
        for index in range(WARMUP + SAMPLES):
            sample = end_to_receipt_sample(bench, workflow)
            if index >= WARMUP:
                for key, value in sample.items():
                    e2e.setdefault(key, []).append(value)
        print(f"[receipts] signing: {SIGN_WARMUP} + {SIGN_SAMPLES} runs with mc.receipts paused ...", flush=True)
        receipt_ids = unsigned_receipts(bench, workflow, SIGN_WARMUP + SIGN_SAMPLES)
        signing = {name: values[SIGN_WARMUP:] for name, values in signing_samples(receipt_ids).items()}
        receipts_consumer(bench, on=True)
        chain = chain_verify(bench.tenant)
        errors = bench.worker_errors()
        conditions = bench.conditions()

    sign_rows = [
        summarize("receipt_sign (in-process, with commit)", signing["receipt_sign"]),
        summarize("  part: get_signer (keyring, key load)", signing["get_signer"]),
        summarize("  part: statement_for (reads)", signing["statement_for"]),
        summarize("  part: sign_statement (JCS, ECDSA, b64)", signing["sign_statement"]),
        summarize("bare cryptography ECDSA P-256 sign", signing["bare_sign"]),
    ]
    total, bare = sign_rows[0], sign_rows[-1]
    payload_bytes = sorted(signing["payload_bytes"])
    print(f"\nsigning, {SIGN_SAMPLES} receipts after {SIGN_WARMUP} warm-up (payload {payload_bytes[0]:.0f} bytes)\n")
    print_table(sign_rows, p99=True)
    ratios = {p: getattr(total, p) / getattr(bare, p) for p in ("p50", "p95", "p99")}
    part_ratios = {p: getattr(sign_rows[3], p) / getattr(bare, p) for p in ("p50", "p95", "p99")}
    print()
    print_rows(
        ("ratio to bare ECDSA", "p50", "p95", "p99"),
        [
            ("receipt_sign", *(f"{r:.1f}x" for r in ratios.values())),
            ("sign_statement", *(f"{r:.1f}x" for r in part_ratios.values())),
        ],
    )

    e2e_rows: list[Result] = [
        summarize("Execution.finished_at -> Receipt.signed_at", e2e["end_to_receipt"]),
        summarize("  finished_at -> receipt row created", e2e["finished_to_row"]),
        summarize("  row created -> signed_at", e2e["row_to_signed"]),
    ]
    end = e2e_rows[0]
    print(f"\nend to receipt, {SAMPLES} runs after {WARMUP} warm-up (prefork -c 2, acks_late, prefetch 1)\n")
    print_table(e2e_rows, p99=True)
    meets = end.p95 < TARGET_P95_MS
    print(f"\nend-to-receipt p95 {end.p95:.1f} ms: target < {TARGET_P95_MS:.0f} ms -> {verdict(meets)}")
    print(f"chain of {chain.receipts} receipts verifies: {chain.ok}" + ("" if chain.ok else f" {chain.problems[:3]}"))
    if errors:
        print(f"\nWARNING: worker logs have errors: {errors}")
    print(describe(conditions))
    path = write_json(
        "receipts",
        {
            "samples": SAMPLES,
            "warmup": WARMUP,
            "sign_samples": SIGN_SAMPLES,
            "sign_warmup": SIGN_WARMUP,
            "payload_bytes": {"min": payload_bytes[0], "max": payload_bytes[-1]},
            "signing": [r.as_dict() for r in sign_rows],
            "ratios_to_bare": {"receipt_sign": ratios, "sign_statement": part_ratios},
            "end_to_receipt": [r.as_dict() for r in e2e_rows],
            "targets": {"end_to_receipt_p95_ms": TARGET_P95_MS},
            "met": {"end_to_receipt_p95_ms": meets},
            "chain_ok": chain.ok,
            "chain_receipts": chain.receipts,
            "worker_errors": errors,
            "environment": environment(),
            "conditions": conditions,
        },
    )
    print(f"\nsaved {path}")


if __name__ == "__main__":
    main()
