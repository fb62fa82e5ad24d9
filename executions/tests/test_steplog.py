"""A step's log: timestamped lines, a failed attempt's error and traceback, pii kept out, capped."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from executions.services.steplog import REDACTED, StepLog, timestamp

STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z ")


def fixed() -> datetime:
    return datetime(2026, 5, 4, 10, 11, 12, 345678, tzinfo=UTC)


def test_every_line_has_its_utc_time_to_the_millisecond() -> None:
    log = StepLog(10_000, clock=fixed)
    log.write("hello")
    log.write("world")
    assert log.text() == "2026-05-04T10:11:12.345Z hello\n2026-05-04T10:11:12.345Z world"
    assert timestamp(fixed()) == "2026-05-04T10:11:12.345Z"


def test_a_failure_writes_code_message_details_and_traceback() -> None:
    log = StepLog(10_000, clock=fixed)
    log.write("calling upstream")
    log.failed(
        {
            "code": "crashed",
            "message": "ValueError: bad",
            "details": [{"path": "/with/url", "message": "not a URL"}],
            "traceback": 'Traceback (most recent call last):\n  File "x.py", line 1\nValueError: bad\n',
        }
    )
    lines = log.text().splitlines()
    assert all(STAMP.match(line) or line.startswith("    ") for line in lines)
    assert lines[1].endswith("ERROR crashed: ValueError: bad")
    assert lines[2].endswith("/with/url: not a URL")
    assert "Traceback of the crash:" in lines[3] and lines[-1] == "    ValueError: bad"


def test_the_error_is_written_even_when_the_log_was_cut() -> None:
    log = StepLog(4_000, clock=fixed)
    for _ in range(500):
        log.write("x" * 50)
    log.failed({"code": "step_failed", "message": "gave up"})
    text = log.text()
    assert "[log truncated]" in text and text.splitlines()[-1].endswith("ERROR step_failed: gave up")
    assert len(text) <= 4_000 + 100


def test_pii_is_redacted_from_lines_and_errors() -> None:
    log = StepLog(10_000, clock=fixed)
    log.redact({"email": "ada@example.com"})
    log.write("mailing ada@example.com")
    log.failed({"code": "step_failed", "message": "ada@example.com bounced"})
    assert "ada@example.com" not in log.text() and log.text().count(REDACTED) == 2


def test_an_attempt_killed_at_its_time_limit_still_logs_why() -> None:
    from executions.services.steplog import failure_log

    text = failure_log({"code": "timeout", "message": "killed at the hard time limit after 2 s"}, 10_000)
    assert STAMP.match(text) and text.endswith("ERROR timeout: killed at the hard time limit after 2 s")
