"""The policy engine: bundle loading, fail-closed decisions, RegoEngine and OpaEngine agreeing.

Pure Python, no database: every bundle is written under tmp_path.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import tarfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from policy.engine import (
    POLICY_ERROR,
    Bundle,
    BundleError,
    Decision,
    OpaEngine,
    PolicyEngine,
    RegoEngine,
    input_digest,
    load_bundle,
)
from policy.engine import bundle as bundle_module
from policy.tests.opa_standin import OpaStandIn
from workflows.manifest import canonical_json

BUDGET_REGO = """package mc.budget

import rego.v1

cap := object.get(input.limits, "max_cost_per_run_usd", data.mc.budget.defaults.max_cost_per_run_usd)

deny contains item if {
\tinput.plan.estimated_usd > cap
\titem := {
\t\t"code": "cost_over_cap",
\t\t"message": sprintf("estimated cost $%v exceeds the cap $%v per run", [input.plan.estimated_usd, cap]),
\t\t"path": "/plan/estimated_usd",
\t}
}

deny contains item if {
\tsome i, step in input.plan.steps
\tstep.resource_class == "huge"
\titem := {
\t\t"code": "huge_step",
\t\t"message": sprintf("step %q is huge", [step.id]),
\t\t"path": sprintf("/plan/steps/%d", [i]),
\t}
}

warn contains item if {
\tinput.plan.estimated_usd >= 0.8 * cap
\tinput.plan.estimated_usd <= cap
\titem := {
\t\t"code": "cost_near_cap",
\t\t"message": sprintf("estimated cost $%v is near the cap $%v", [input.plan.estimated_usd, cap]),
\t\t"path": "/plan/estimated_usd",
\t}
}
"""

BUDGET_TEST_REGO = """package mc.budget_test

import rego.v1

test_nothing if true
"""


def write_bundle(root: Path, files: dict[str, str | bytes], manifest: dict[str, Any] | None = None) -> Path:
    """Write a bundle directory; ``.manifest`` defaults to roots ["mc/<dirname>"]."""
    root.mkdir(parents=True)
    content: dict[str, str | bytes] = {
        ".manifest": json.dumps(manifest or {"revision": "r1", "roots": [f"mc/{root.name}"]})
    }
    content.update(files)
    for rel, text in content.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return root


def budget_dir(tmp_path: Path) -> Path:
    return write_bundle(
        tmp_path / "budget",
        {
            "policy.rego": BUDGET_REGO,
            "policy_test.rego": BUDGET_TEST_REGO,
            "mc/budget/data.json": json.dumps({"defaults": {"max_cost_per_run_usd": 1.5}}),
        },
    )


def pack_dir(tmp_path: Path, name: str, rego_source: str, data: dict[str, Any] | None = None) -> Path:
    files: dict[str, str | bytes] = {"policy.rego": rego_source}
    if data is not None:
        files[f"mc/{name}/data.json"] = json.dumps(data)
    return write_bundle(tmp_path / name, files)


def make_targz(source: Path, target: Path) -> Path:
    with tarfile.open(target, "w:gz") as tar:
        for file in sorted(source.rglob("*")):
            tar.add(file, arcname=file.relative_to(source).as_posix(), recursive=False)
    return target


def policy_input(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "version": "mc.policy/v1",
        "stage": "plan",
        "request": {
            "tenant": "acme",
            "actor": "alice",
            "mode": "run",
            "region": "eu-west-1",
            "resource_classes": ["small"],
        },
        "manifest": {"name": "wf", "version": "1.0.0", "tasks": [{"id": "a", "uses": "pkg:mc/echo@1"}]},
        "plan": {
            "estimated_usd": 0.42,
            "estimated_seconds": 12.5,
            "steps": [{"id": "a", "uses": "pkg:mc/echo@1", "resource_class": "small", "shards": 1, "needs": []}],
            "side_effects": [],
            "data_classes": [],
        },
        "usage": {"running_steps": {"small": 0}, "spend_today_usd": 0.0},
        "limits": {},
    }
    for key, value in overrides.items():
        section, _, field = key.partition("__")
        if field:
            doc[section][field] = value
        else:
            doc[section] = value
    return doc


def comparable(decision: Decision) -> Decision:
    """Drop what two engines may legitimately differ in: timing, and the wording of a failure."""
    if decision.error is None:
        return dataclasses.replace(decision, duration_ms=0.0)
    failed = [{**item, "message": "(failure)"} for item in decision.deny]
    return dataclasses.replace(decision, duration_ms=0.0, deny=failed, error="(failure)")


@pytest.fixture
def budget(tmp_path: Path) -> Bundle:
    return load_bundle(budget_dir(tmp_path))


@pytest.fixture
def rego_engine_for() -> Iterator[Callable[..., RegoEngine]]:
    engines: list[RegoEngine] = []

    def make(bundles: list[Bundle], timeout_s: float = 2.0) -> RegoEngine:
        engines.append(RegoEngine(bundles, timeout_s=timeout_s))
        return engines[-1]

    yield make
    for engine in engines:
        engine.close()


@pytest.fixture
def opa_for() -> Iterator[Callable[..., tuple[OpaEngine, OpaStandIn]]]:
    started: list[tuple[OpaEngine, OpaStandIn]] = []

    def make(bundles: list[Bundle], timeout_s: float = 2.0) -> tuple[OpaEngine, OpaStandIn]:
        standin = OpaStandIn(bundles).start()
        started.append((OpaEngine(standin.base_url, bundles, timeout_s=timeout_s), standin))
        return started[-1]

    yield make
    for engine, standin in started:
        engine.close()
        standin.stop()


@pytest.fixture(params=["rego", "opa"])
def engine_for(request: pytest.FixtureRequest, rego_engine_for: Any, opa_for: Any) -> Callable[..., PolicyEngine]:
    """Each behaviour test runs against both engines: they must decide alike."""
    if request.param == "rego":
        return rego_engine_for
    return lambda bundles, timeout_s=2.0: opa_for(bundles, timeout_s)[0]


def assert_policy_error(decision: Decision, fragment: str) -> None:
    assert decision.result == "deny"
    assert [item["code"] for item in decision.deny] == [POLICY_ERROR]
    assert decision.warn == []
    assert decision.error is not None
    assert fragment in decision.error, decision.error
    assert fragment in decision.deny[0]["message"]


# --- loading -------------------------------------------------------------------------


def test_load_directory_reads_manifest_modules_and_nested_data(tmp_path: Path) -> None:
    bundle = load_bundle(budget_dir(tmp_path))

    assert (bundle.name, bundle.revision, bundle.roots) == ("budget", "r1", ("mc/budget",))
    assert list(bundle.modules) == ["policy.rego"]  # *_test.rego is not evaluated
    assert bundle.data == {"mc": {"budget": {"defaults": {"max_cost_per_run_usd": 1.5}}}}
    assert bundle.digest.startswith("sha256:") and len(bundle.digest) == 71


def test_directory_and_targz_of_the_same_content_have_the_same_digest(tmp_path: Path) -> None:
    directory = budget_dir(tmp_path)
    archive = make_targz(directory, tmp_path / "budget.tar.gz")

    from_dir, from_tar = load_bundle(directory), load_bundle(archive)

    assert from_tar.name == "budget"
    assert from_tar.digest == from_dir.digest
    assert (from_tar.modules, from_tar.data, from_tar.revision) == (from_dir.modules, from_dir.data, from_dir.revision)


def test_digest_changes_with_any_file_including_tests(tmp_path: Path) -> None:
    before = load_bundle(budget_dir(tmp_path)).digest
    (tmp_path / "budget" / "policy_test.rego").write_text(BUDGET_TEST_REGO + "\n# changed\n")

    assert load_bundle(tmp_path / "budget").digest != before


def test_data_json_files_merge_at_their_directory_paths(tmp_path: Path) -> None:
    directory = write_bundle(
        tmp_path / "quotas",
        {
            "policy.rego": "package mc.quotas\n\nimport rego.v1\n\ndeny := set()\n\nwarn := set()\n",
            "data.json": json.dumps({"mc": {"quotas": {"a": 1}}}),
            "mc/quotas/data.json": json.dumps({"b": 2}),
            "mc/quotas/limits/data.json": json.dumps({"large": 5}),
        },
    )

    assert load_bundle(directory).data == {"mc": {"quotas": {"a": 1, "b": 2, "limits": {"large": 5}}}}


@pytest.mark.parametrize(
    ("manifest", "fragment", "line"),
    [
        (None, "no .manifest", 0),
        ('{\n  "revision": "r1",\n  roots: []\n}', "invalid JSON", 3),
        ("[1, 2]", "JSON object", 0),
        ('{"revision": 7}', "revision must be a string", 0),
        ('{"revision": "r", "roots": "mc/x"}', "roots must be a list", 0),
    ],
)
def test_manifest_errors(tmp_path: Path, manifest: str | None, fragment: str, line: int) -> None:
    directory = write_bundle(tmp_path / "x", {"policy.rego": "package mc.x\n\ndeny := set()\n"})
    if manifest is None:
        (directory / ".manifest").unlink()
    else:
        (directory / ".manifest").write_text(manifest)

    with pytest.raises(BundleError) as caught:
        load_bundle(directory)

    assert fragment in caught.value.message
    assert caught.value.file == ".manifest"
    assert caught.value.line == line


def test_rego_syntax_error_reports_file_line_and_column(tmp_path: Path) -> None:
    source = "package mc.x\n\n# h\u00e9llo \u2603\ndeny contains d if {\n  d := [1,\n}\n"
    directory = write_bundle(tmp_path / "x", {"ok.rego": "package mc.x\n\nwarn := set()\n", "sub/bad.rego": source})

    with pytest.raises(BundleError) as caught:
        load_bundle(directory)

    error = caught.value
    assert (error.file, error.line, error.column) == ("sub/bad.rego", 5, 8)
    assert "unclosed" in error.message
    assert str(error).startswith("sub/bad.rego:5:8: ")


def test_a_module_without_package_is_refused(tmp_path: Path) -> None:
    directory = write_bundle(tmp_path / "x", {"a.rego": "# comment\n\ndeny := 1\n"})

    with pytest.raises(BundleError) as caught:
        load_bundle(directory)

    assert (caught.value.file, caught.value.line, caught.value.message) == (
        "a.rego",
        3,
        "a module must start with a package declaration",
    )


def test_a_bundle_without_its_pack_package_is_refused(tmp_path: Path) -> None:
    directory = write_bundle(
        tmp_path / "x", {"a.rego": "package mc.other\n\ndeny := set()\n"}, {"revision": "r", "roots": ["mc"]}
    )

    with pytest.raises(BundleError, match=r"no module declares package mc\.x"):
        load_bundle(directory)


def test_a_package_outside_the_roots_is_refused(tmp_path: Path) -> None:
    directory = write_bundle(
        tmp_path / "x", {"a.rego": "package mc.x\n\ndeny := set()\n", "b.rego": "package other\n\ny := 1\n"}
    )

    with pytest.raises(BundleError, match="outside the manifest roots") as caught:
        load_bundle(directory)

    assert caught.value.file == "b.rego"


@pytest.mark.parametrize(
    ("files", "fragment", "line"),
    [
        ({"mc/x/data.json": '{"a": 1,\n "b": }'}, "invalid JSON", 2),
        ({"data.json": "[1]"}, "must hold a JSON object", 0),
        ({"data.json": '{"other": {"a": 1}}'}, "outside the manifest roots", 0),
        ({"data.json": '{"mc": {"x": {"a": 1}}}', "mc/x/data.json": '{"a": 2}'}, "data conflicts at /mc/x/a", 0),
    ],
)
def test_bad_data_json_is_refused(tmp_path: Path, files: dict[str, str], fragment: str, line: int) -> None:
    directory = write_bundle(tmp_path / "x", {"a.rego": "package mc.x\n\ndeny := set()\n", **files})

    with pytest.raises(BundleError) as caught:
        load_bundle(directory)

    assert fragment in caught.value.message
    assert caught.value.file.endswith("data.json")
    assert caught.value.line == line


def _tar_with(tmp_path: Path, member: tarfile.TarInfo, content: bytes = b"") -> Path:
    archive = tmp_path / "x.tar.gz"
    manifest = json.dumps({"revision": "r", "roots": ["mc/x"]}).encode()
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo(".manifest")
        info.size = len(manifest)
        tar.addfile(info, io.BytesIO(manifest))
        tar.addfile(member, io.BytesIO(content) if member.isfile() else None)
    return archive


def _member(name: str, kind: bytes = tarfile.REGTYPE, size: int = 0, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.size, info.linkname = kind, size, linkname
    return info


@pytest.mark.parametrize(
    ("member", "fragment"),
    [
        (_member("/etc/evil.rego", size=3), "absolute paths"),
        (_member("../evil.rego", size=3), "'..'"),
        (_member("a/../../evil.rego", size=3), "'..'"),
        (_member("evil.rego", tarfile.SYMTYPE, linkname="/etc/passwd"), "links"),
        (_member("evil.rego", tarfile.LNKTYPE, linkname=".manifest"), "links"),
        (_member("dev.rego", tarfile.CHRTYPE), "regular files"),
    ],
)
def test_unsafe_tar_members_are_refused(tmp_path: Path, member: tarfile.TarInfo, fragment: str) -> None:
    archive = _tar_with(tmp_path, member, b"abc")

    with pytest.raises(BundleError, match=fragment):
        load_bundle(archive)


def test_symlinks_in_a_bundle_directory_are_refused(tmp_path: Path) -> None:
    directory = write_bundle(tmp_path / "x", {"a.rego": "package mc.x\n\ndeny := set()\n"})
    (directory / "b.rego").symlink_to(tmp_path / "elsewhere.rego")

    with pytest.raises(BundleError, match="symbolic links"):
        load_bundle(directory)


def test_oversize_bundles_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    directory = budget_dir(tmp_path)
    archive = make_targz(directory, tmp_path / "budget.tar.gz")
    monkeypatch.setattr(bundle_module, "MAX_BUNDLE_BYTES", 500)

    for path in (directory, archive):
        with pytest.raises(BundleError, match="larger than 500 bytes"):
            load_bundle(path)


def test_a_corrupt_archive_is_a_bundle_error(tmp_path: Path) -> None:
    archive = tmp_path / "x.tar.gz"
    archive.write_bytes(b"\x1f\x8b not really gzip")

    with pytest.raises(BundleError, match=r"not a readable \.tar\.gz"):
        load_bundle(archive)


# --- decisions -----------------------------------------------------------------------


def test_allow_warn_and_deny(budget: Bundle, engine_for: Callable[..., PolicyEngine]) -> None:
    engine = engine_for([budget])

    allow = engine.evaluate("budget", policy_input(plan__estimated_usd=0.42))
    warn = engine.evaluate("mc.budget", policy_input(plan__estimated_usd=1.3))
    deny = engine.evaluate("budget", policy_input(plan__estimated_usd=2.1))

    assert (allow.result, allow.deny, allow.warn, allow.error) == ("allow", [], [], None)
    assert warn.result == "warn"
    assert warn.warn == [
        {"code": "cost_near_cap", "message": "estimated cost $1.3 is near the cap $1.5", "path": "/plan/estimated_usd"}
    ]
    assert deny.result == "deny"
    assert deny.deny == [
        {
            "code": "cost_over_cap",
            "message": "estimated cost $2.1 exceeds the cap $1.5 per run",
            "path": "/plan/estimated_usd",
        }
    ]
    assert (deny.pack, deny.revision, deny.bundle_digest) == ("budget", "r1", budget.digest)


def test_deny_wins_over_warn_and_explanations_are_sorted(budget: Bundle, engine_for: Callable[..., Any]) -> None:
    steps = [{"id": f"s{n}", "resource_class": "huge"} for n in (2, 0, 1)]
    doc = policy_input(plan__estimated_usd=1.4, plan__steps=steps, limits={"max_cost_per_run_usd": 1.5})

    decision = engine_for([budget]).evaluate("budget", doc)

    assert decision.result == "deny"
    assert [d["path"] for d in decision.deny] == ["/plan/steps/0", "/plan/steps/1", "/plan/steps/2"]
    assert [w["code"] for w in decision.warn] == ["cost_near_cap"]


def test_tenant_limits_override_data_defaults(budget: Bundle, engine_for: Callable[..., Any]) -> None:
    doc = policy_input(plan__estimated_usd=2.1, limits={"max_cost_per_run_usd": 5})

    assert engine_for([budget]).evaluate("budget", doc).result == "allow"


def test_input_digest_is_sha256_of_canonical_json(budget: Bundle, engine_for: Callable[..., Any]) -> None:
    doc = policy_input()
    expected = "sha256:" + hashlib.sha256(canonical_json(doc)).hexdigest()

    assert input_digest(doc) == expected
    assert engine_for([budget]).evaluate("budget", doc).input_digest == expected


def test_strings_with_quotes_and_unicode_reach_the_policy_intact(
    tmp_path: Path, engine_for: Callable[..., Any]
) -> None:
    source = (
        "package mc.echo\n\nimport rego.v1\n\nwarn := set()\n\n"
        'deny contains {"code": "echo", "message": input.request.actor, "path": "/request/actor"} if {\n'
        '\tinput.request.tenant == "acme \\"q\\" \\\\ r\u00e9gion"\n}\n'
    )
    bundle = load_bundle(pack_dir(tmp_path, "echo", source))
    actor = 'al"ice \\ \u2603\n'

    decision = engine_for([bundle]).evaluate(
        "echo", policy_input(request__tenant='acme "q" \\ r\u00e9gion', request__actor=actor)
    )

    assert decision.deny == [{"code": "echo", "message": actor, "path": "/request/actor"}]


def test_floats_keep_their_precision(tmp_path: Path, budget: Bundle, engine_for: Callable[..., Any]) -> None:
    engine = engine_for([budget])

    assert engine.evaluate("budget", policy_input(plan__estimated_usd=1.5000001)).result == "deny"
    assert engine.evaluate("budget", policy_input(plan__estimated_usd=1.5)).result == "warn"


DENY_HEAD = (
    'package mc.p\n\nimport rego.v1\n\nwarn := set()\n\ndeny contains {"code": "c", "message": m, "path": ""} if {\n'
)

UNDEFINED_OR_BROKEN = {
    "no_deny_rule": ("package mc.p\n\nimport rego.v1\n\nwarn := set()\n", "data.mc.p.deny is undefined"),
    "no_warn_rule": ("package mc.p\n\nimport rego.v1\n\ndeny := set()\n", "data.mc.p.warn is undefined"),
    "conditional_deny_undefined": (
        "package mc.p\n\nimport rego.v1\n\nwarn := set()\n\ndeny := {1} if input.nothing_here\n",
        "data.mc.p.deny is undefined",
    ),
    "deny_is_a_boolean": ("package mc.p\n\nimport rego.v1\n\nwarn := set()\n\ndeny := false\n", "not a set"),
    "item_without_message": (
        'package mc.p\n\nimport rego.v1\n\nwarn := set()\n\ndeny contains {"code": "x"} if true\n',
        "without a string message",
    ),
    "item_not_an_object": (
        'package mc.p\n\nimport rego.v1\n\nwarn := set()\n\ndeny contains "nope" if true\n',
        "not an object with code and message",
    ),
    "conflicting_complete_rule": (
        "package mc.p\n\nimport rego.v1\n\nwarn := set()\n\nx := 1 if input.version\n\nx := 2 if input.version\n\n"
        "deny := {x}\n",
        "evaluation failed",
    ),
    "builtin_error": (
        DENY_HEAD + '\tm := sprintf("%v", [1 / count(input.plan.side_effects)])\n}\n',
        "divide by zero",
    ),
    "type_error_in_rule": (
        DENY_HEAD + "\tm := input.request.tenant + 1\n}\n",
        "evaluation failed",
    ),
}


@pytest.mark.parametrize("case", sorted(UNDEFINED_OR_BROKEN))
def test_undefined_or_broken_policies_fail_closed(tmp_path: Path, engine_for: Callable[..., Any], case: str) -> None:
    source, fragment = UNDEFINED_OR_BROKEN[case]
    bundle = load_bundle(pack_dir(tmp_path, "p", source))

    decision = engine_for([bundle]).evaluate("p", policy_input())

    assert_policy_error(decision, fragment)


def test_an_unknown_pack_fails_closed(budget: Bundle, engine_for: Callable[..., Any]) -> None:
    decision = engine_for([budget]).evaluate("nosuch", policy_input())

    assert_policy_error(decision, "no bundle provides this pack")
    assert decision.pack == "nosuch"


def test_an_input_that_is_not_json_fails_closed(budget: Bundle, engine_for: Callable[..., Any]) -> None:
    decision = engine_for([budget]).evaluate("budget", policy_input(plan__estimated_usd=float("nan")))

    assert_policy_error(decision, "not canonical JSON")


def test_evaluate_all_returns_one_decision_per_pack_in_order(
    tmp_path: Path, budget: Bundle, engine_for: Callable[..., Any]
) -> None:
    broken = load_bundle(pack_dir(tmp_path, "broken", "package mc.broken\n\nwarn := set()\n"))

    decisions = engine_for([budget, broken]).evaluate_all(policy_input(plan__estimated_usd=2.0))

    assert [(d.pack, d.result) for d in decisions] == [("budget", "deny"), ("broken", "deny")]
    assert decisions[1].deny[0]["code"] == POLICY_ERROR


# --- RegoEngine specifics ------------------------------------------------------------

LOOP_REGO = """package mc.loop

import rego.v1

warn := set()

deny contains {"code": "never", "message": "never", "path": ""} if {
\tsome i in numbers.range(1, input.n)
\tsome j in numbers.range(1, input.n)
\ti * j == -1
}
"""


def test_a_runaway_policy_times_out_and_the_engine_recovers(
    tmp_path: Path, budget: Bundle, rego_engine_for: Callable[..., RegoEngine]
) -> None:
    loop = load_bundle(pack_dir(tmp_path, "loop", LOOP_REGO))
    engine = rego_engine_for([loop, budget], timeout_s=0.2)

    # ~1,000^2 iterations take ~2 s in rego-cpp; the caller gives up after 0.2 s.
    slow = engine.evaluate_all({**policy_input(), "n": 1000})

    assert_policy_error(slow[0], "timed out after 0.2s")
    assert slow[0].duration_ms == 200
    assert slow[1].result == "allow"  # the remaining pack ran on a fresh worker
    assert engine.evaluate("loop", {**policy_input(), "n": 3}).result == "allow"


def test_concurrent_evaluations_match_sequential_ones(
    budget: Bundle, rego_engine_for: Callable[..., RegoEngine]
) -> None:
    engine = rego_engine_for([budget])
    inputs = [policy_input(plan__estimated_usd=cost / 10) for cost in range(30)]
    expected = [comparable(engine.evaluate("budget", doc)) for doc in inputs]
    got: dict[int, Decision] = {}

    def run(offset: int) -> None:
        for index in range(offset, len(inputs), 6):
            got[index] = comparable(engine.evaluate("budget", inputs[index]))

    threads = [threading.Thread(target=run, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert [got[i] for i in range(len(inputs))] == expected


def test_two_bundles_cannot_provide_the_same_pack(budget: Bundle) -> None:
    with pytest.raises(ValueError, match="two bundles provide the pack 'budget'"):
        RegoEngine([budget, budget])


# --- both engines agree --------------------------------------------------------------


def test_rego_and_opa_engines_produce_identical_decisions(
    tmp_path: Path, budget: Bundle, rego_engine_for: Callable[..., RegoEngine], opa_for: Callable[..., Any]
) -> None:
    broken = load_bundle(
        pack_dir(tmp_path, "broken", UNDEFINED_OR_BROKEN["builtin_error"][0].replace("mc.p", "mc.broken"))
    )
    bundles = [budget, broken]
    rego_engine, (opa_engine, _) = rego_engine_for(bundles), opa_for(bundles)
    inputs = [
        policy_input(plan__estimated_usd=cost, plan__steps=[{"id": "h", "resource_class": "huge"}] * (cost > 2))
        for cost in (0.0, 0.42, 1.2, 1.5, 1.5000001, 2.5, 3)
    ]

    for doc in inputs:
        assert [comparable(d) for d in rego_engine.evaluate_all(doc)] == [
            comparable(d) for d in opa_engine.evaluate_all(doc)
        ]


# --- OpaEngine against the stand-in ----------------------------------------------------


def test_opa_engine_posts_the_input_to_the_pack_path_with_strict_builtin_errors(
    budget: Bundle, opa_for: Callable[..., Any]
) -> None:
    engine, standin = opa_for([budget])

    engine.evaluate("budget", policy_input())

    assert standin.requests == [{"path": "mc/budget", "params": {"strict-builtin-errors": ["true"]}}]


@pytest.mark.parametrize(
    ("mode", "fragment"),
    [
        ("error500", "OPA answered 500: internal_error: simulated failure"),
        ("undefined", "data.mc.budget is undefined"),
        ("garbage", "not JSON"),
        ("slow", "OPA did not answer within 0.2s"),
    ],
)
def test_opa_failures_fail_closed(budget: Bundle, opa_for: Callable[..., Any], mode: str, fragment: str) -> None:
    engine, standin = opa_for([budget], timeout_s=0.2)
    standin.mode, standin.delay_s = mode, 1.0

    assert_policy_error(engine.evaluate("budget", policy_input()), fragment)


def test_an_unreachable_opa_fails_closed(budget: Bundle) -> None:
    standin = OpaStandIn([budget])  # bound to a port, never started
    standin.stop()

    with OpaEngine(standin.base_url, [budget], timeout_s=0.5) as engine:
        decision = engine.evaluate("budget", policy_input())

    assert_policy_error(decision, "OPA request failed: ConnectError")


# --- the project's packs, when they exist --------------------------------------------

PROJECT_BUNDLES = Path(__file__).resolve().parent.parent / "bundles"


def _loadable_project_bundles() -> list[Bundle]:
    bundles = []
    for directory in sorted(PROJECT_BUNDLES.glob("*")) if PROJECT_BUNDLES.is_dir() else []:
        try:
            bundles.append(load_bundle(directory))
        except BundleError:
            continue  # being written concurrently; test_packs.py owns their correctness
    return bundles


def test_smoke_project_packs_evaluate_without_policy_errors(
    rego_engine_for: Callable[..., RegoEngine], opa_for: Callable[..., Any]
) -> None:
    bundles = _loadable_project_bundles()
    if not bundles:
        pytest.skip("no loadable bundles under policy/bundles yet")
    doc = policy_input(manifest={"name": "wf", "version": "1.0.0", "region": "eu-west-1", "tasks": []})

    decisions = rego_engine_for(bundles).evaluate_all(doc)

    assert [d.pack for d in decisions] == [b.name for b in bundles]
    assert all(d.error is None for d in decisions), [d.error for d in decisions]
    assert [comparable(d) for d in decisions] == [comparable(d) for d in opa_for(bundles)[0].evaluate_all(doc)]
