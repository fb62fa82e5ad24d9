"""${{ ... }} expressions: parsing, rendering (typed and embedded) and the manifest checks."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from executions.expressions import (
    ExpressionError,
    ExpressionSyntaxError,
    Reference,
    expression_problems,
    merge_shard_outputs,
    references,
    render,
)

# --- parsing --------------------------------------------------------------------------


def test_references_walk_any_json_value_in_document_order() -> None:
    value = {
        "a": "${{ inputs.region }}",
        "b": ["plain", {"c": "x ${{steps.fetch.outputs.body}} y ${{ matrix.part }}"}],
        "n": 3,
        "keys-are-not-rendered ${{ inputs.nope }}": None,
    }

    assert references(value) == [
        (("a",), Reference("inputs", "region")),
        (("b", 1, "c"), Reference("steps", "fetch", ("body",))),
        (("b", 1, "c"), Reference("matrix", "part")),
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${{inputs.x}}", Reference("inputs", "x")),
        ("${{   inputs._X9   }}", Reference("inputs", "_X9")),
        ("${{\ninputs.x\n}}", Reference("inputs", "x")),
        (
            "${{ steps.fetch-2.outputs.headers.content-type }}",
            Reference("steps", "fetch-2", ("headers", "content-type")),
        ),
        ("${{ steps.a.outputs.items.0.name }}", Reference("steps", "a", ("items", "0", "name"))),
        ("${{ matrix.region }}", Reference("matrix", "region")),
    ],
)
def test_the_three_forms(text: str, expected: Reference) -> None:
    [(path, found)] = references(text)

    assert path == ()
    assert found == expected
    assert found.text == text


@pytest.mark.parametrize(
    ("text", "offending", "fragment"),
    [
        ("${{ }}", "${{ }}", "empty expression"),
        ("${{ inputs }}", "${{ inputs }}", "expected inputs.<name>"),
        ("${{ inputs.x.y }}", "${{ inputs.x.y }}", "expected inputs.<name>"),
        ("${{ inputs.1x }}", "${{ inputs.1x }}", "expected inputs.<name>"),
        ("${{ steps.a.result }}", "${{ steps.a.result }}", "expected steps.<id>.outputs.<key>"),
        ("${{ steps.a.outputs }}", "${{ steps.a.outputs }}", "expected steps.<id>.outputs.<key>"),
        ("${{ steps.Build.outputs.x }}", "${{ steps.Build.outputs.x }}", "expected steps.<id>.outputs.<key>"),
        ("${{ input.x }}", "${{ input.x }}", "(did you mean 'inputs'?)"),
        ("${{ env.HOME }}", "${{ env.HOME }}", "expected inputs.<name>, steps.<id>.outputs.<key> or matrix.<key>"),
        ("${{ inputs.x + 1 }}", "${{ inputs.x + 1 }}", "malformed expression"),
        ("${{ __import__('os').system('id') }}", "${{ __import__('os').system('id') }}", "malformed"),
        ("ok ${{ inputs.x }} then ${{ inputs.y", "${{ inputs.y", "unclosed expression '${{ inputs.y'"),
    ],
)
def test_malformed_expressions_name_the_offending_text(text: str, offending: str, fragment: str) -> None:
    with pytest.raises(ExpressionSyntaxError) as caught:
        references({"k": text})

    assert caught.value.text == offending
    assert fragment in caught.value.message


def test_strings_without_expressions_have_no_references() -> None:
    assert references(["$", "${", "{{ inputs.x }}", "$ {{ inputs.x }}", "}}", 1, None]) == []


# --- rendering ------------------------------------------------------------------------

INPUTS = {"region": "eu-west-1", "count": 3, "ratio": 0.5, "flag": True, "none": None, "tags": ["a", "b"]}
STEPS = {"fetch": {"status": 200, "body": "hi", "headers": {"content-type": "text/plain"}, "items": [{"n": 1}]}}


def rendered(value: Any, matrix: dict[str, Any] | None = None) -> Any:
    return render(value, inputs=INPUTS, steps=STEPS, matrix=matrix)


@pytest.mark.parametrize("name", list(INPUTS))
def test_a_whole_string_expression_keeps_the_type(name: str) -> None:
    assert rendered(f"${{{{ inputs.{name} }}}}") == INPUTS[name]


def test_embedded_expressions_become_text() -> None:
    value = "${{ inputs.region }}/${{ inputs.count }}/${{ inputs.ratio }}/${{ inputs.flag }}/${{ inputs.none }}"

    assert rendered(value) == "eu-west-1/3/0.5/true/null"
    assert rendered("tags=${{ inputs.tags }}") == 'tags=["a","b"]'
    assert rendered("h=${{ steps.fetch.outputs.headers }}") == 'h={"content-type":"text/plain"}'
    assert rendered(" ${{ inputs.count }}") == " 3"  # not exactly one expression: text


def test_nested_output_keys_and_list_indexes() -> None:
    assert rendered("${{ steps.fetch.outputs.headers.content-type }}") == "text/plain"
    assert rendered("${{ steps.fetch.outputs.items.0.n }}") == 1


def test_matrix_values() -> None:
    assert rendered({"a": "${{ matrix.part }}", "b": "p${{ matrix.part }}"}, matrix={"part": 2}) == {"a": 2, "b": "p2"}


def test_render_builds_a_new_value_and_leaves_its_sources_alone() -> None:
    template = {"x": ["${{ steps.fetch.outputs.items }}", 1, {"y": "keep"}], "n": None}
    before = copy.deepcopy(template)

    result = rendered(template)
    result["x"][0][0]["n"] = 99

    assert template == before
    assert STEPS["fetch"]["items"] == [{"n": 1}]


def test_values_without_expressions_are_returned_as_they_are() -> None:
    value = {"a": [1, 2.5, True, None, "text {{ x }}"]}

    assert rendered(value) == value


@pytest.mark.parametrize(
    ("template", "fragment"),
    [
        ("${{ inputs.missing }}", "input 'missing' has no value"),
        ("x ${{ steps.other.outputs.a }}", "step 'other' has no outputs here"),
        ("${{ steps.fetch.outputs.nope }}", "step 'fetch' has no output 'nope'"),
        ("${{ steps.fetch.outputs.headers.etag }}", "has no output 'headers.etag'"),
        ("${{ steps.fetch.outputs.status.code }}", "has no output 'status.code'"),
        ("${{ steps.fetch.outputs.items.5 }}", "has no output 'items.5'"),
        ("${{ matrix.part }}", "matrix key 'part' has no value"),
    ],
)
def test_a_missing_value_is_an_expression_error(template: str, fragment: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        rendered({"k": template})

    assert not isinstance(caught.value, ExpressionSyntaxError)
    assert fragment in caught.value.message


def test_malformed_expressions_fail_rendering_too() -> None:
    with pytest.raises(ExpressionSyntaxError):
        rendered("${{ inputs.region | upper }}")


def test_a_matrix_tasks_outputs_are_its_shards_outputs_in_order() -> None:
    merged = merge_shard_outputs([{"result": 1, "extra": "x"}, {"result": 2}])

    assert merged == {"shards": [{"result": 1, "extra": "x"}, {"result": 2}]}
    assert render("${{ steps.fan.outputs.shards.1.result }}", inputs={}, steps={"fan": merged}) == 2


# --- checking a manifest --------------------------------------------------------------


def manifest(*tasks: dict[str, Any], inputs: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": "expr-test", "version": "1.0.0", "inputs": inputs or {}, "tasks": list(tasks)}


def echo(task_id: str, message: Any, needs: list[str] | None = None, **more: Any) -> dict[str, Any]:
    return {"id": task_id, "uses": "pkg:mc/echo@1", "needs": needs or [], "with": {"message": message}, **more}


def problems(doc: Any) -> list[tuple[str, str]]:
    return sorted((p.path, p.message) for p in expression_problems(doc))


def test_a_sound_manifest_has_no_problems() -> None:
    doc = manifest(
        echo("a", "${{ inputs.region }}"),
        echo("b", "${{ steps.a.outputs.message }}", ["a"]),
        echo("c", "from a: ${{ steps.a.outputs.message }}, b: ${{ steps.b.outputs.message }}", ["b"]),
        inputs={"region": {"type": "string"}},
    )

    assert problems(doc) == []


def test_an_unknown_input_suggests_a_close_one() -> None:
    doc = manifest(
        echo("a", "x"),
        echo("b", "${{ inputs.regoin }}"),
        echo("c", "${{ inputs.regoin }}"),
        inputs={"region": {"type": "string"}},
    )
    doc["tasks"][2]["with"] = {"message": {"deep": ["${{ inputs.nothing_like_it }}"]}}

    assert problems(doc) == [
        ("/tasks/1/with/message", "unknown input 'regoin' (did you mean 'region'?)"),
        ("/tasks/2/with/message/deep/0", "unknown input 'nothing_like_it'"),
    ]


def test_steps_must_be_among_the_transitive_needs() -> None:
    doc = manifest(
        echo("a", "x"),
        echo("b", "x"),
        echo("c", "${{ steps.a.outputs.message }}", ["b"]),  # a is not upstream of c
        echo("d", "${{ steps.a.outputs.message }}", ["e"]),  # a is upstream through e
        echo("e", "x", ["a"]),
    )

    assert problems(doc) == [
        ("/tasks/2/with/message", "step 'a' is not among the needs of task 'c'; add it to needs"),
    ]


def test_an_unknown_step_suggests_a_close_one() -> None:
    doc = manifest(echo("fetch", "x"), echo("b", "${{ steps.fecth.outputs.message }}", ["fetch"]))

    assert problems(doc) == [("/tasks/1/with/message", "unknown step 'fecth' (did you mean 'fetch'?)")]


def test_a_task_cannot_use_its_own_outputs_but_its_compensation_can() -> None:
    doc = manifest(
        echo("a", "${{ steps.a.outputs.message }}"),
        echo(
            "b", "x", compensate={"uses": "pkg:mc/echo@1", "with": {"message": "undo ${{ steps.b.outputs.message }}"}}
        ),
    )

    assert problems(doc) == [
        ("/tasks/0/with/message", "task 'a' cannot use its own outputs (only its compensate block can)")
    ]


def test_a_compensation_sees_the_needs_of_its_task_and_nothing_else() -> None:
    undo = {
        "uses": "pkg:mc/echo@1",
        "with": {"message": ["${{ steps.a.outputs.message }}", "${{ steps.c.outputs.message }}"]},
    }
    doc = manifest(echo("a", "x"), echo("b", "x", ["a"], compensate=undo), echo("c", "x"))

    assert problems(doc) == [
        ("/tasks/1/compensate/with/message/1", "step 'c' is not among the needs of task 'b'; add it to needs"),
    ]


def test_outputs_are_checked_against_the_package_when_it_declares_them() -> None:
    doc = manifest(
        echo("a", "x"),
        {"id": "p", "uses": "pkg:mc/python@1", "with": {"callable": "executions.packages.samples:add"}},
        echo("b", ["${{ steps.a.outputs.mesage }}", "${{ steps.p.outputs.anything.at.all }}"], ["a", "p"]),
        {"id": "z", "uses": "pkg:acme/unknown@1"},
        echo("y", "${{ steps.z.outputs.whatever }}", ["z"]),
    )

    assert problems(doc) == [
        (
            "/tasks/2/with/message/0",
            "step 'a' (pkg:mc/echo@1) has no output 'mesage' (did you mean 'message'?); its outputs are: message",
        ),
    ]


def test_matrix_keys_must_be_the_tasks_own() -> None:
    sharded = echo("a", ["${{ matrix.part }}", "${{ matrix.prat }}"], strategy={"matrix": {"part": [1, 2]}})
    plain = echo("b", "${{ matrix.part }}")
    doc = manifest(sharded, plain)

    assert problems(doc) == [
        ("/tasks/0/with/message/1", "unknown matrix key 'prat' (did you mean 'part'?)"),
        ("/tasks/1/with/message", "task 'b' has no strategy.matrix, so '${{ matrix.part }}' has no value"),
    ]


def test_a_compensation_runs_once_so_it_has_no_matrix_values() -> None:
    undo = {"uses": "pkg:mc/echo@1", "with": {"message": ["${{ matrix.part }}", "${{ steps.c.outputs.shards }}"]}}
    doc = manifest(echo("c", "x", strategy={"matrix": {"part": [1]}}, compensate=undo))

    assert problems(doc) == [
        (
            "/tasks/0/compensate/with/message/0",
            "'${{ matrix.part }}' has no value in a compensate block: it runs once for the whole task, not per shard",
        )
    ]


def test_downstream_tasks_see_a_matrix_tasks_shards() -> None:
    doc = manifest(
        echo("a", "${{ matrix.n }}", strategy={"matrix": {"n": [1, 2]}}),
        echo("b", ["${{ steps.a.outputs.shards }}", "${{ steps.a.outputs.shards.0.message }}"], ["a"]),
        echo("c", "${{ steps.a.outputs.message }}", ["a"]),
    )

    assert problems(doc) == [
        (
            "/tasks/2/with/message",
            "step 'a' is a matrix task: its outputs are 'shards', one entry per shard "
            "(e.g. steps.a.outputs.shards.0.message)",
        )
    ]


def test_malformed_expressions_are_problems_at_their_string() -> None:
    doc = manifest(echo("a", {"x": "${{ inputs.a + 1 }}", "y": "${{ inputs.b"}), inputs={"a": {"type": "number"}})

    assert problems(doc) == [
        ("/tasks/0/with/message/x", "malformed expression '${{ inputs.a + 1 }}': expected inputs.<name>"),
        ("/tasks/0/with/message/y", "unclosed expression '${{ inputs.b': missing '}}'"),
    ]


def test_keys_with_slashes_are_escaped_in_paths() -> None:
    doc = manifest({"id": "a", "uses": "pkg:mc/http@1", "with": {"headers": {"x/y": "${{ inputs.t }}"}}})

    assert problems(doc) == [("/tasks/0/with/headers/x~1y", "unknown input 't'")]


@pytest.mark.parametrize(
    "doc",
    [
        None,
        [],
        {"tasks": {}},
        manifest("x", {"id": 3, "with": {"m": "${{ steps.a.outputs.x }}"}}),
        manifest(echo("a", "${{ steps.b.outputs.message }}", ["b"]), echo("b", "x", ["a"])),  # a cycle
        manifest(echo("a", "x"), echo("a", "${{ steps.a.outputs.message }}")),  # a duplicate id
        {"tasks": [echo("a", "${{ inputs.x }}")], "inputs": ["x"]},
        manifest(echo("a", "${{ matrix.k }}", strategy={"matrix": "k"})),
    ],
)
def test_unreadable_documents_do_not_crash(doc: Any) -> None:
    assert isinstance(expression_problems(doc), list)


def test_steps_in_a_cycle_still_get_their_needs_checked() -> None:
    doc = manifest(echo("a", "x", ["b"]), echo("b", "x", ["a"]), echo("c", "${{ steps.a.outputs.message }}"))

    assert problems(doc) == [("/tasks/2/with/message", "step 'a' is not among the needs of task 'c'; add it to needs")]
