# PII pack: where steps handling personal data may run, and where their outputs may go.
#
# Reads input.plan.steps (data_classes, needs, side_effects), input.plan.side_effects,
# input.request.region, input.limits.pii_regions and input.manifest.pii_export_approved
# (input document mc.policy/v1, docs/policy.md). Regions compare case-insensitively.
# Messages are built with concat: rego-cpp 1.5.2 sprintf quotes computed strings.
# Every lookup has a default, so a partial input gives fewer denials, never an
# undefined deny.
package mc.pii

import rego.v1

default request := {}

request := r if {
	r := input.request
	is_object(r)
}

default manifest := {}

manifest := m if {
	m := input.manifest
	is_object(m)
}

default limits := {}

limits := l if {
	l := input.limits
	is_object(l)
}

default plan := {}

plan := p if {
	p := input.plan
	is_object(p)
}

# text(x) is x when it is a string, "" otherwise (missing keys, nulls, numbers).
text(x) := x if is_string(x)

else := ""

# list(x) is x when it is an array, [] otherwise.
list(x) := x if is_array(x)

else := []

norm(region) := lower(trim_space(text(region)))

quoted(s) := concat("", ["\"", s, "\""])

request_region := norm(object.get(request, "region", ""))

# The tenant's pii regions, else the pack's default (data.json).
pii_regions := r if {
	r := limits.pii_regions
	is_array(r)
} else := r if {
	r := data.mc.pii.defaults.pii_regions
	is_array(r)
} else := []

steps := [s | some s in list(object.get(plan, "steps", [])); is_object(s)]

step_id(step) := text(object.get(step, "id", ""))

# Arrays rather than sets or objects where a rule walks every step: rego-cpp builds sets
# and objects in quadratic time, which a 1,000-step plan would feel.

# The index of a step id in plan.steps, for JSON pointers (asked only for a denied step).
step_index(id) := i if {
	some i, s in list(object.get(plan, "steps", []))
	is_object(s)
	step_id(s) == id
}

step_ids := [step_id(s) | some s in steps; step_id(s) != ""]

pii_steps := [step_id(s) | some s in steps; "pii" in list(object.get(s, "data_classes", [])); step_id(s) != ""]

side_effect_steps contains step_id(s) if {
	some s in steps
	object.get(s, "side_effects", false) == true
	step_id(s) != ""
}

side_effect_steps contains id if {
	some id in list(object.get(plan, "side_effects", []))
	id in step_ids
}

# step id -> ids of the steps it needs (the edges of the plan's DAG, towards inputs).
needs_graph := {step_id(s): [text(n) | some n in list(object.get(s, "needs", []))] |
	some s in steps
	step_id(s) != ""
}

# The pii steps a side-effect step receives data from, directly or through other steps.
pii_feeding(step) := {id |
	some id in graph.reachable(needs_graph, [step])
	id != step
	id in pii_steps
}

sorted_list(ids) := concat(", ", sort([quoted(id) | some id in ids]))

deny contains {
	"code": "pii_region",
	"message": concat("", [
		"steps ", sorted_list(pii_steps), " handle pii data, which may only be processed in ",
		concat(", ", [text(r) | some r in pii_regions]), "; ", requested_label,
	]),
	"path": "/request/region",
} if {
	count(pii_steps) > 0
	not request_region in {norm(r) | some r in pii_regions}
}

requested_label := concat("", ["the run asks for ", quoted(request_region)]) if request_region != ""

else := "the run asks for no region"

deny contains {
	"code": "pii_export_unapproved",
	"message": concat("", [
		"step ", quoted(step), " has side effects and receives pii data from ", sorted_list(sources),
		"; the workflow must set pii_export_approved: true to allow it",
	]),
	"path": concat("", ["/plan/steps/", format_int(step_index(step), 10)]),
} if {
	object.get(manifest, "pii_export_approved", false) != true
	count(pii_steps) > 0
	some step in side_effect_steps
	sources := pii_feeding(step)
	count(sources) > 0
}

warn contains {
	"code": "pii_redacted",
	"message": concat("", ["outputs of the pii steps ", sorted_list(pii_steps), " will be redacted from logs"]),
	"path": "/plan/steps",
} if {
	count(pii_steps) > 0
}
