package mc.pii_test

import rego.v1

import data.mc.pii

# rego-cpp 1.5.2 crashes on `with input as {...}`, so tests replace input.request,
# input.plan, input.manifest and input.limits one at a time. It also leaves
# `with ... as <rule>` undefined: fixture rules are first bound to local variables.

# load (pii) -> clean -> send (side effects); audit has side effects but no pii upstream.
plan_export := {
	"estimated_usd": 0.1,
	"steps": [
		{"id": "load", "uses": "pkg:mc/sql@1", "data_classes": ["pii"], "needs": [], "side_effects": false},
		{"id": "clean", "uses": "pkg:mc/echo@1", "data_classes": [], "needs": ["load"], "side_effects": false},
		{"id": "send", "uses": "pkg:mc/http@1", "data_classes": [], "needs": ["clean"], "side_effects": true},
		{"id": "audit", "uses": "pkg:mc/http@1", "data_classes": [], "needs": [], "side_effects": true},
	],
	"side_effects": ["send", "audit"],
	"data_classes": ["pii"],
}

plan_no_pii := {"steps": [
	{"id": "a", "data_classes": [], "needs": [], "side_effects": false},
	{"id": "b", "data_classes": ["financial"], "needs": ["a"], "side_effects": true},
]}

codes(findings) := {f.code | some f in findings}

# --- allowed ---

test_no_pii_steps_allowed_anywhere if {
	p := plan_no_pii
	d := pii.deny with input.request as {"region": "us-east-1"} with input.plan as p
	d == set()
}

test_no_pii_steps_no_warning if {
	p := plan_no_pii
	w := pii.warn with input.plan as p
	w == set()
}

test_pii_in_region_with_approved_export_allowed if {
	p := plan_export
	d := pii.deny with input.request as {"region": "eu-west-1"} with input.plan as p
		with input.manifest as {"pii_export_approved": true}
	d == set()
}

test_pii_without_side_effects_downstream_allowed if {
	p := {"steps": [
		{"id": "load", "data_classes": ["pii"], "needs": []},
		{"id": "notify", "needs": [], "side_effects": true},
	]}
	d := pii.deny with input.request as {"region": "eu-central-1"} with input.plan as p
	d == set()
}

test_region_match_is_case_insensitive if {
	p := {"steps": [{"id": "load", "data_classes": ["pii"]}]}
	d := pii.deny with input.request as {"region": "EU-WEST-1"} with input.plan as p
	d == set()
}

# --- pii_region ---

test_pii_outside_default_regions_denied if {
	p := plan_export
	d := pii.deny with input.request as {"region": "us-east-1"} with input.plan as p
		with input.manifest as {"pii_export_approved": true}
	d == {{
		"code": "pii_region",
		"message": "steps \"load\" handle pii data, which may only be processed in eu-west-1, eu-central-1; the run asks for \"us-east-1\"",
		"path": "/request/region",
	}}
}

test_pii_regions_from_tenant_limits if {
	p := plan_export
	d := pii.deny with input.request as {"region": "eu-central-1"} with input.plan as p
		with input.manifest as {"pii_export_approved": true}
		with input.limits as {"pii_regions": ["eu-west-1"]}
	codes(d) == {"pii_region"}
}

test_tenant_limits_can_widen_pii_regions if {
	p := plan_export
	d := pii.deny with input.request as {"region": "us-east-1"} with input.plan as p
		with input.manifest as {"pii_export_approved": true}
		with input.limits as {"pii_regions": ["us-east-1"]}
	d == set()
}

test_pii_regions_default_from_data if {
	p := plan_export
	d := pii.deny with input.request as {"region": "eu-west-1"} with input.plan as p
		with input.manifest as {"pii_export_approved": true}
		with data.mc.pii.defaults.pii_regions as ["ca-central-1"]
	codes(d) == {"pii_region"}
}

test_pii_without_request_region_denied if {
	p := {"steps": [{"id": "load", "data_classes": ["pii"]}]}
	d := pii.deny with input.request as {"region": ""} with input.plan as p
	d == {{
		"code": "pii_region",
		"message": "steps \"load\" handle pii data, which may only be processed in eu-west-1, eu-central-1; the run asks for no region",
		"path": "/request/region",
	}}
}

# --- pii_export_unapproved ---

test_pii_feeding_side_effects_transitively_denied if {
	p := plan_export
	d := pii.deny with input.request as {"region": "eu-west-1"} with input.plan as p
	d == {{
		"code": "pii_export_unapproved",
		"message": "step \"send\" has side effects and receives pii data from \"load\"; the workflow must set pii_export_approved: true to allow it",
		"path": "/plan/steps/2",
	}}
}

test_export_approval_must_be_true if {
	p := plan_export
	d := pii.deny with input.request as {"region": "eu-west-1"} with input.plan as p
		with input.manifest as {"pii_export_approved": "yes"}
	codes(d) == {"pii_export_unapproved"}
}

test_side_effects_from_plan_list if {
	# "send" is flagged only in plan.side_effects, not on the step.
	p := {"steps": [
		{"id": "load", "data_classes": ["pii"]},
		{"id": "send", "needs": ["load"]},
	], "side_effects": ["send"]}
	d := pii.deny with input.request as {"region": "eu-west-1"} with input.plan as p
	[f] := [f | some f in d]
	f.code == "pii_export_unapproved"
	f.path == "/plan/steps/1"
}

test_every_pii_source_is_named if {
	p := {"steps": [
		{"id": "b", "data_classes": ["pii"]},
		{"id": "a", "data_classes": ["pii"]},
		{"id": "join", "needs": ["a", "b"]},
		{"id": "send", "needs": ["join"], "side_effects": true},
	]}
	d := pii.deny with input.request as {"region": "eu-west-1"} with input.plan as p
	[f] := [f | some f in d]
	f.message == "step \"send\" has side effects and receives pii data from \"a\", \"b\"; the workflow must set pii_export_approved: true to allow it"
}

test_both_rules_fire_together if {
	p := plan_export
	d := pii.deny with input.request as {"region": "us-east-1"} with input.plan as p
	codes(d) == {"pii_region", "pii_export_unapproved"}
}

# --- pii_redacted (warn) ---

test_warn_lists_pii_steps if {
	p := {"steps": [
		{"id": "load", "data_classes": ["pii"]},
		{"id": "mid", "data_classes": []},
		{"id": "enrich", "data_classes": ["pii", "financial"]},
	]}
	w := pii.warn with input.plan as p
	w == {{
		"code": "pii_redacted",
		"message": "outputs of the pii steps \"enrich\", \"load\" will be redacted from logs",
		"path": "/plan/steps",
	}}
}

# --- partial and malformed input ---

test_empty_input_denies_nothing if {
	pii.deny == set()
	pii.warn == set()
}

test_plan_without_request_or_manifest if {
	# No request region: pii_region fires, and nothing errors.
	p := plan_export
	d := pii.deny with input.plan as p
	codes(d) == {"pii_region", "pii_export_unapproved"}
}

test_wrong_types_do_not_break_deny if {
	d := pii.deny with input.plan as {"steps": [3, {"id": 7, "data_classes": "pii"}, {"data_classes": ["pii"]}]}
		with input.limits as {"pii_regions": "eu-west-1"}
		with input.request as {"region": ["eu"]}
	d == set()
}

test_needs_on_unknown_steps_ignored if {
	p := {"steps": [
		{"id": "load", "data_classes": ["pii"], "needs": ["ghost"]},
		{"id": "send", "needs": ["load", 5], "side_effects": true},
	]}
	d := pii.deny with input.request as {"region": "eu-west-1"} with input.plan as p
	codes(d) == {"pii_export_unapproved"}
}
