"""The built-in packages' run(): echo, sleep, fail, python, storage-put (shell and http have their own files)."""

from __future__ import annotations

import base64
import hashlib
import time
from dataclasses import dataclass, field
from typing import Any

import pytest

from executions.packages import Cost, InputInvalid, PackageSettings, StepContext, StepFailed, default_registry
from executions.packages.builtin import (
    EchoPackage,
    FailPackage,
    PythonPackage,
    SleepPackage,
    StoragePutPackage,
)


@dataclass
class MemorySink:
    """An ArtifactSink that keeps what it is given."""

    stored: dict[str, tuple[bytes, str]] = field(default_factory=dict)

    def put(self, data: bytes, *, content_type: str = "application/octet-stream") -> str:
        ref = "sha256:" + hashlib.sha256(data).hexdigest()
        self.stored[ref] = (data, content_type)
        return ref


def context(attempt: int = 1, timeout: int = 60, settings: PackageSettings | None = None) -> StepContext:
    lines: list[str] = []
    return StepContext(
        execution_id="e-1",
        step_id="s",
        attempt=attempt,
        resource_class="small",
        timeout_seconds=timeout,
        log=lines.append,
        artifacts=MemorySink(),
        settings=settings or PackageSettings(),
    )


# --- echo -----------------------------------------------------------------------------


@pytest.mark.parametrize("message", ["hi", 3, None, [1, {"a": True}], {"nested": {"x": 1.5}}])
def test_echo_returns_any_json_message_unchanged(message: Any) -> None:
    assert EchoPackage().run(context(), {"message": message}) == {"message": message}


def test_echo_without_a_message_is_invalid_input_and_not_retryable() -> None:
    with pytest.raises(InputInvalid) as caught:
        EchoPackage().run(context(), {})

    assert caught.value.retryable is False
    assert caught.value.details == [{"path": "", "message": "missing required key 'message'"}]


# --- sleep ----------------------------------------------------------------------------


def test_sleep_sleeps_and_reports_the_seconds() -> None:
    started = time.monotonic()

    outputs = SleepPackage().run(context(), {"seconds": 0.2})

    assert outputs == {"slept": 0.2}
    assert time.monotonic() - started >= 0.2


def test_sleep_estimate_is_the_seconds_it_sleeps_priced_by_class() -> None:
    package = SleepPackage()

    assert package.estimate({"seconds": 30}, "small") == Cost(30.0, 0.03)
    assert package.estimate({"seconds": 30}, "large").usd > package.estimate({"seconds": 30}, "small").usd
    assert package.estimate({"seconds": "${{ inputs.s }}"}, "small") == package.cost["small"]


@pytest.mark.parametrize("with_", [{"seconds": -1}, {"seconds": 3601}, {"seconds": "2"}, {}, {"seconds": 1, "x": 1}])
def test_sleep_rejects_bad_seconds(with_: dict[str, Any]) -> None:
    with pytest.raises(InputInvalid):
        SleepPackage().run(context(), with_)


def test_sleep_longer_than_the_step_timeout_fails_as_a_timeout() -> None:
    with pytest.raises(StepFailed, match="timed out after 0 s") as caught:
        SleepPackage().run(context(timeout=0), {"seconds": 5})

    assert caught.value.retryable is True


# --- fail -----------------------------------------------------------------------------


def test_fail_fails_retryably_until_the_attempt_after_times() -> None:
    package = FailPackage()
    with_ = {"times": 2, "message": "simulated outage"}

    for attempt in (1, 2):
        with pytest.raises(StepFailed, match="simulated outage") as caught:
            package.run(context(attempt=attempt), with_)
        assert caught.value.retryable is True
        assert not isinstance(caught.value, InputInvalid)

    assert package.run(context(attempt=3), with_) == {"attempts": 3}


def test_fail_without_times_always_fails_with_a_default_message() -> None:
    with pytest.raises(StepFailed, match=r"failed on purpose \(attempt 7\)"):
        FailPackage().run(context(attempt=7), {})


def test_fail_with_times_zero_succeeds_at_once() -> None:
    assert FailPackage().run(context(), {"times": 0}) == {"attempts": 1}


def test_fail_rejects_negative_times() -> None:
    with pytest.raises(InputInvalid):
        FailPackage().run(context(), {"times": -1})


# --- python ---------------------------------------------------------------------------

SAMPLES = "executions.packages.samples"


def test_python_calls_an_allowed_function_and_wraps_a_non_dict_result() -> None:
    outputs = PythonPackage().run(context(), {"callable": f"{SAMPLES}:add", "args": {"a": 2, "b": 40}})

    assert outputs == {"result": 42}


def test_python_keeps_a_dict_result_as_the_outputs() -> None:
    outputs = PythonPackage().run(context(), {"callable": f"{SAMPLES}:word_count", "args": {"text": "a b\nc"}})

    assert outputs == {"words": 3, "lines": 2, "characters": 5}


def test_python_sum_shards_fans_in_numbers_or_shard_outputs() -> None:
    shards = [{"result": 1}, {"result": None}, {"result": 2.5}, 4, None]

    outputs = PythonPackage().run(context(), {"callable": f"{SAMPLES}:sum_shards", "args": {"values": shards}})

    assert outputs == {"total": 7.5, "count": 3}


@pytest.mark.parametrize(
    ("reference", "fragment"),
    [
        ("os:system", "module 'os' is not allowed"),
        ("executions.packages:samples", "module 'executions.packages' is not allowed"),
        ("executions.packages.samples.extra:add", "is not allowed"),
        (f"{SAMPLES}:annotations", "is not a function defined in"),  # imported from __future__
        (f"{SAMPLES}:missing", "is not a function defined in"),
    ],
)
def test_python_refuses_what_is_not_an_allowed_function(reference: str, fragment: str) -> None:
    with pytest.raises(InputInvalid, match=fragment):
        PythonPackage().run(context(), {"callable": reference})


def test_python_refuses_functions_merely_imported_into_an_allowed_module() -> None:
    settings = PackageSettings(python_allowed_modules=("json",))

    with pytest.raises(InputInvalid, match="is not a function defined in json"):
        PythonPackage().run(context(settings=settings), {"callable": "json:JSONDecoder"})

    # json.dumps is defined in json itself, so it is allowed once json is.
    assert PythonPackage().run(context(settings=settings), {"callable": "json:dumps", "args": {"obj": [1]}}) == {
        "result": "[1]"
    }


@pytest.mark.parametrize("reference", ["samples.add", f"{SAMPLES}:_private", f"{SAMPLES}:add()", "__import__('os')"])
def test_python_callable_must_look_like_module_colon_function(reference: str) -> None:
    problems = PythonPackage().check_input({"callable": reference})

    assert [p.path for p in problems] == ["/callable"]
    with pytest.raises(InputInvalid):
        PythonPackage().run(context(), {"callable": reference})


def test_python_arguments_that_do_not_fit_the_signature_are_invalid_input() -> None:
    with pytest.raises(InputInvalid, match=r"cannot call .*add with arguments \['a', 'c'\]"):
        PythonPackage().run(context(), {"callable": f"{SAMPLES}:add", "args": {"a": 1, "c": 2}})


def test_python_result_that_is_not_json_fails_without_retry(monkeypatch: pytest.MonkeyPatch) -> None:
    from executions.packages import samples

    def not_json() -> object:
        return {"when": object()}

    not_json.__module__ = samples.__name__
    monkeypatch.setattr(samples, "not_json", not_json, raising=False)

    with pytest.raises(StepFailed, match="not JSON") as caught:
        PythonPackage().run(context(), {"callable": f"{SAMPLES}:not_json"})
    assert caught.value.retryable is False


# --- storage-put ----------------------------------------------------------------------


def test_storage_put_stores_text_and_outputs_its_reference() -> None:
    ctx = context()

    outputs = StoragePutPackage().run(ctx, {"content": "héllo"})

    data = "héllo".encode()
    assert outputs == {
        "ref": "sha256:" + hashlib.sha256(data).hexdigest(),
        "size": len(data),
        "content_type": "text/plain; charset=utf-8",
    }
    assert ctx.artifacts.stored[outputs["ref"]] == (data, "text/plain; charset=utf-8")  # type: ignore[attr-defined]


def test_storage_put_stores_json_compactly_with_sorted_keys() -> None:
    ctx = context()

    outputs = StoragePutPackage().run(ctx, {"content": {"b": 1, "a": [True, None]}})

    assert ctx.artifacts.stored[outputs["ref"]] == (b'{"a":[true,null],"b":1}', "application/json")  # type: ignore[attr-defined]


def test_storage_put_decodes_base64_and_honours_the_content_type() -> None:
    ctx = context()
    payload = bytes(range(256))

    outputs = StoragePutPackage().run(
        ctx, {"content": base64.b64encode(payload).decode(), "encoding": "base64", "content_type": "image/png"}
    )

    assert outputs["size"] == 256
    assert ctx.artifacts.stored[outputs["ref"]] == (payload, "image/png")  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "with_", [{"content": "not base64!", "encoding": "base64"}, {"content": 5, "encoding": "base64"}, {}]
)
def test_storage_put_rejects_bad_content(with_: dict[str, Any]) -> None:
    with pytest.raises(InputInvalid):
        StoragePutPackage().run(context(), with_)


# --- declarations ---------------------------------------------------------------------


def test_every_builtin_declares_a_cost_for_each_class_that_grows_with_the_class() -> None:
    for package in default_registry().packages():
        if package.namespace != "mc":
            continue
        small, medium, large = (package.cost[rc] for rc in ("small", "medium", "large"))
        assert 0 < small.usd < medium.usd < large.usd, package.uses
        assert package.data_classes == ()
        assert package.description and package.example


def test_only_packages_that_reach_outside_have_side_effects() -> None:
    flagged = {p.uses for p in default_registry().packages() if p.namespace == "mc" and p.side_effects}

    assert flagged == {"pkg:mc/http@1", "pkg:mc/shell@1", "pkg:mc/storage-put@1"}
