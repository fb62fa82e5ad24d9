package mc.residency_test

import rego.v1

import data.mc.residency

# rego-cpp 1.5.2 crashes on `with input as {...}`, so tests replace input.request and
# input.manifest one at a time. It also leaves `with ... as <rule>` undefined: a
# fixture rule is first bound to a local variable (`m := manifest_eu`).

manifest_eu := {
	"name": "nightly",
	"region": "eu-west-1",
	"tasks": [
		{"id": "load", "uses": "pkg:mc/echo@1"},
		{"id": "store", "uses": "pkg:mc/echo@1", "regions": ["eu-west-1", "EU-Central-1"]},
	],
}

codes(findings) := {f.code | some f in findings}

# --- allowed ---

test_same_region_allowed if {
	m := manifest_eu
	d := residency.deny with input.request as {"region": "eu-west-1"} with input.manifest as m
	d == set()
}

test_region_match_is_case_insensitive if {
	m := manifest_eu
	d := residency.deny with input.request as {"region": "EU-West-1"} with input.manifest as m
	d == set()
}

test_task_narrowing_contains_request_region if {
	d := residency.deny with input.request as {"region": "eu-central-1"}
		with input.manifest as object.union(manifest_eu, {"region": "eu-central-1"})
	count(d) == 0
}

test_no_warning_when_manifest_has_region if {
	m := manifest_eu
	count(residency.warn) == 0 with input.request as {"region": "eu-west-1"} with input.manifest as m
}

test_no_request_region_and_no_narrowing_allowed if {
	d := residency.deny with input.request as {"region": ""}
		with input.manifest as {"region": "eu-west-1", "tasks": [{"id": "a", "regions": []}]}
	count(d) == 0
}

# --- region_mismatch ---

test_mismatch_denied if {
	d := residency.deny with input.request as {"region": "us-east-1"}
		with input.manifest as {"region": "eu-west-1", "tasks": []}
	d == {{
		"code": "region_mismatch",
		"message": "requested region \"us-east-1\" differs from the workflow's region \"eu-west-1\"",
		"path": "/request/region",
	}}
}

test_no_mismatch_without_manifest_region if {
	d := residency.deny with input.request as {"region": "us-east-1"} with input.manifest as {"tasks": []}
	count(d) == 0
}

# --- region_banned ---

test_banned_request_region_by_country_prefix if {
	d := residency.deny with input.request as {"region": "ru-central-1"} with input.manifest as {"tasks": []}
	d == {{
		"code": "region_banned",
		"message": "requested region \"ru-central-1\" is banned: it matches the banned entry \"RU\"",
		"path": "/request/region",
	}}
}

test_banned_request_region_exact_and_case_insensitive if {
	d := residency.deny with input.request as {"region": "kp"} with input.manifest as {"tasks": []}
	codes(d) == {"region_banned"}
}

test_banned_manifest_region if {
	d := residency.deny with input.request as {"region": ""} with input.manifest as {"region": "RU-West-2"}
	d == {{
		"code": "region_banned",
		"message": "workflow region \"ru-west-2\" is banned: it matches the banned entry \"RU\"",
		"path": "/manifest/region",
	}}
}

test_banned_list_comes_from_data if {
	d := residency.deny with input.request as {"region": "us-east-1"} with data.mc.residency.banned_regions as ["US"]
	codes(d) == {"region_banned"}
}

test_prefix_only_matches_whole_country_code if {
	# "rus-1" is not "ru": only the part before the first "-" is a country code.
	d := residency.deny with input.request as {"region": "rus-1"}
	count(d) == 0
}

# --- task_region_excluded ---

test_task_narrowing_excludes_request_region if {
	d := residency.deny with input.request as {"region": "eu-north-1"}
		with input.manifest as object.union(manifest_eu, {"region": "eu-north-1"})
	d == {{
		"code": "task_region_excluded",
		"message": "task \"store\" may only run in eu-west-1, EU-Central-1, not in the requested region \"eu-north-1\"",
		"path": "/manifest/tasks/1/regions",
	}}
}

test_task_narrowing_without_request_region_denied if {
	m := manifest_eu
	d := residency.deny with input.request as {"region": ""} with input.manifest as m
	d == {{
		"code": "task_region_excluded",
		"message": "task \"store\" may only run in eu-west-1, EU-Central-1, not in an unspecified region (the request gives none)",
		"path": "/manifest/tasks/1/regions",
	}}
}

test_task_without_id_named_by_index if {
	d := residency.deny with input.request as {"region": "us-east-1"}
		with input.manifest as {"tasks": [{"regions": ["eu-west-1"]}]}
	[f] := [f | some f in d]
	f.message == "task \"#0\" may only run in eu-west-1, not in the requested region \"us-east-1\""
}

test_every_rule_fires_together if {
	m := manifest_eu
	d := residency.deny with input.request as {"region": "ru-central-1"} with input.manifest as m
	codes(d) == {"region_mismatch", "region_banned", "task_region_excluded"}
}

# --- region_unset (warn) ---

test_warn_when_manifest_has_no_region if {
	w := residency.warn with input.request as {"region": "eu-west-1"} with input.manifest as {"tasks": []}
	w == {{
		"code": "region_unset",
		"message": "the workflow sets no region: it may run in any region that is not banned",
		"path": "/manifest/region",
	}}
}

test_warn_when_manifest_region_is_blank if {
	codes(residency.warn) == {"region_unset"} with input.manifest as {"region": "  "}
}

# --- partial and malformed input ---

test_empty_input_denies_nothing if {
	count(residency.deny) == 0
}

test_request_only if {
	count(residency.deny) == 0 with input.request as {"region": "eu-west-1"}
}

test_wrong_types_do_not_break_deny if {
	d := residency.deny with input.request as {"region": 42}
		with input.manifest as {"region": ["eu"], "tasks": "nope"}
	count(d) == 0
}

test_malformed_task_entries_skipped if {
	d := residency.deny with input.request as {"region": "eu-west-1"}
		with input.manifest as {"tasks": [7, {"id": "a", "regions": "eu-west-1"}, {"id": "b", "regions": ["eu-west-1"]}]}
	count(d) == 0
}

test_missing_banned_list_bans_nothing if {
	d := residency.deny with input.request as {"region": "ru-central-1"} with data.mc.residency.banned_regions as null
	count(d) == 0
}
