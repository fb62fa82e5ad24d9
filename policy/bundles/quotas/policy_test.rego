package mc.quotas_test

import rego.v1

import data.mc.quotas

# rego-cpp 1.5.2 crashes on `with input as {...}`, so tests replace input.stage,
# input.plan, input.usage and input.limits one at a time. Defaults (data.json): at most
# 5 large steps per run; 20 small, 10 medium and 2 large steps running at once.

codes(findings) := {f.code | some f in findings}

plan_mixed := {"steps": [
	{"id": "extract", "resource_class": "small", "shards": 1, "needs": []},
	{"id": "train", "resource_class": "large", "shards": 3, "needs": ["extract"]},
	{"id": "score", "resource_class": "medium", "shards": 1, "needs": ["train"]},
]}

# --- allowed ---

test_plan_within_limits_allowed if {
	p := plan_mixed
	d := quotas.deny with input.stage as "plan" with input.plan as p
	d == set()
}

test_large_steps_at_limit_allowed if {
	d := quotas.deny with input.stage as "plan"
		with input.plan as {"steps": [{"id": "a", "resource_class": "large", "shards": 5}]}
	d == set()
}

test_dispatch_under_quota_allowed if {
	d := quotas.deny with input.stage as "dispatch"
		with input.plan as {"steps": [{"id": "train", "resource_class": "large", "shards": 1}]}
		with input.usage as {"running_steps": {"small": 3, "medium": 0, "large": 1}}
	d == set()
}

test_no_warnings if {
	p := plan_mixed
	w := quotas.warn with input.stage as "plan" with input.plan as p
	w == set()
}

# --- large_steps_exceeded ---

test_large_steps_counting_shards_denied if {
	d := quotas.deny with input.stage as "plan"
		with input.plan as {"steps": [
			{"id": "a", "resource_class": "large", "shards": 4},
			{"id": "b", "resource_class": "large", "shards": 2},
			{"id": "c", "resource_class": "medium", "shards": 50},
		]}
	d == {{
		"code": "large_steps_exceeded",
		"message": "the plan has 6 large steps (counting shards); the limit is 5 per run",
		"path": "/plan/steps",
	}}
}

test_large_steps_limit_from_tenant if {
	p := plan_mixed
	d := quotas.deny with input.stage as "execute" with input.plan as p
		with input.limits as {"max_large_steps_per_run": 2}
	codes(d) == {"large_steps_exceeded"}
}

test_large_steps_limit_default_from_data if {
	p := plan_mixed
	d := quotas.deny with input.stage as "plan" with input.plan as p
		with data.mc.quotas.defaults.max_large_steps_per_run as 1
	codes(d) == {"large_steps_exceeded"}
}

test_missing_shards_count_as_one if {
	d := quotas.deny with input.plan as {"steps": [
		{"id": "a", "resource_class": "large"},
		{"id": "b", "resource_class": "large", "shards": 0},
		{"id": "c", "resource_class": "large", "shards": "many"},
	]}
		with input.limits as {"max_large_steps_per_run": 2}
	[f] := [f | some f in d]
	f.message == "the plan has 3 large steps (counting shards); the limit is 2 per run"
}

# --- resource_class_disabled ---

test_disabled_class_denied_at_plan if {
	p := plan_mixed
	d := quotas.deny with input.stage as "plan" with input.plan as p
		with input.limits as {"max_concurrent_steps": {"medium": 0}}
	d == {{
		"code": "resource_class_disabled",
		"message": "step \"score\" uses resource class \"medium\", which this tenant may not use (max_concurrent_steps is 0)",
		"path": "/plan/steps/2/resource_class",
	}}
}

test_disabled_class_denied_at_execute if {
	p := plan_mixed
	d := quotas.deny with input.stage as "execute" with input.plan as p
		with input.limits as {"max_concurrent_steps": {"large": 0}}
	codes(d) == {"resource_class_disabled"}
}

test_disabled_class_by_default_from_data if {
	p := plan_mixed
	d := quotas.deny with input.stage as "plan" with input.plan as p
		with data.mc.quotas.defaults.max_concurrent_steps as {"small": 0, "medium": 10, "large": 2}
	[f] := [f | some f in d]
	f.path == "/plan/steps/0/resource_class"
}

test_tenant_limit_overrides_only_its_classes if {
	# The tenant sets "large"; "small" and "medium" keep the defaults.
	p := plan_mixed
	d := quotas.deny with input.stage as "plan" with input.plan as p
		with input.limits as {"max_concurrent_steps": {"large": 1}}
		with data.mc.quotas.defaults.max_concurrent_steps as {"small": 0, "medium": 10, "large": 0}
	codes(d) == {"resource_class_disabled"}
	[f] := [f | some f in d]
	f.path == "/plan/steps/0/resource_class"
}

test_missing_resource_class_is_small if {
	d := quotas.deny with input.stage as "plan" with input.plan as {"steps": [{"id": "a"}]}
		with input.limits as {"max_concurrent_steps": {"small": 0}}
	codes(d) == {"resource_class_disabled"}
}

test_disabled_class_not_checked_at_publish_or_dispatch if {
	p := plan_mixed
	d1 := quotas.deny with input.stage as "publish" with input.plan as p
		with input.limits as {"max_concurrent_steps": {"medium": 0}}
	d1 == set()
	d2 := quotas.deny with input.stage as "dispatch" with input.plan as {"steps": [{"id": "extract"}]}
		with input.limits as {"max_concurrent_steps": {"medium": 0}}
	d2 == set()
}

# --- quota_exceeded (stage dispatch) ---

test_dispatch_over_quota_denied if {
	d := quotas.deny with input.stage as "dispatch"
		with input.plan as {"steps": [{"id": "train", "resource_class": "large", "shards": 1}]}
		with input.usage as {"running_steps": {"small": 3, "medium": 0, "large": 2}}
	d == {{
		"code": "quota_exceeded",
		"message": "starting step \"train\" would make 3 \"large\" steps run at once for this tenant; the limit is 2",
		"path": "/usage/running_steps/large",
	}}
}

test_dispatch_quota_from_tenant_limits if {
	d := quotas.deny with input.stage as "dispatch"
		with input.plan as {"steps": [{"id": "a", "resource_class": "small"}]}
		with input.usage as {"running_steps": {"small": 4}}
		with input.limits as {"max_concurrent_steps": {"small": 4}}
	codes(d) == {"quota_exceeded"}
}

test_dispatch_to_disabled_class_is_quota_exceeded if {
	d := quotas.deny with input.stage as "dispatch"
		with input.plan as {"steps": [{"id": "a", "resource_class": "medium"}]}
		with input.limits as {"max_concurrent_steps": {"medium": 0}}
	codes(d) == {"quota_exceeded"}
}

test_dispatch_waits_behind_earlier_steps if {
	d := quotas.deny with input.stage as "dispatch"
		with input.plan as {"steps": [{"id": "load", "resource_class": "small"}]}
		with input.usage as {"running_steps": {"small": 2}, "waiting_ahead": {"small": 1}}
		with input.limits as {"max_concurrent_steps": {"small": 3}}
	d == {{
		"code": "quota_exceeded",
		"message": "step \"load\" waits in line behind 1 earlier \"small\" steps; 2 run now and the limit is 3 at once for this tenant",
		"path": "/usage/waiting_ahead/small",
	}}
}

test_dispatch_with_room_for_those_ahead_allowed if {
	d := quotas.deny with input.stage as "dispatch"
		with input.plan as {"steps": [{"id": "load", "resource_class": "small"}]}
		with input.usage as {"running_steps": {"small": 1}, "waiting_ahead": {"small": 1}}
		with input.limits as {"max_concurrent_steps": {"small": 3}}
	d == set()
}

test_waiting_ahead_of_other_class_ignored if {
	d := quotas.deny with input.stage as "dispatch"
		with input.plan as {"steps": [{"id": "a", "resource_class": "large"}]}
		with input.usage as {"running_steps": {"large": 1}, "waiting_ahead": {"small": 40}}
	d == set()
}

test_running_steps_not_checked_before_dispatch if {
	p := plan_mixed
	d := quotas.deny with input.stage as "execute" with input.plan as p
		with input.usage as {"running_steps": {"small": 99, "medium": 99, "large": 99}}
	d == set()
}

# --- partial and malformed input ---

test_empty_input_denies_nothing if {
	quotas.deny == set()
	quotas.warn == set()
}

test_dispatch_without_usage_counts_nothing_running if {
	d := quotas.deny with input.stage as "dispatch" with input.plan as {"steps": [{"id": "a", "resource_class": "large"}]}
	d == set()
}

test_unknown_class_has_no_limit if {
	d := quotas.deny with input.stage as "dispatch" with input.plan as {"steps": [{"id": "a", "resource_class": "gpu"}]}
		with input.usage as {"running_steps": {"gpu": 1000}}
	d == set()
}

test_wrong_types_do_not_break_deny if {
	d := quotas.deny with input.stage as 5
		with input.plan as {"steps": [7, {"id": "a", "resource_class": "large", "shards": 9}]}
		with input.usage as {"running_steps": "lots"}
		with input.limits as {"max_large_steps_per_run": "two", "max_concurrent_steps": []}
	codes(d) == {"large_steps_exceeded"}
}
