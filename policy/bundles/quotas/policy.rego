# Quotas pack: how many large steps a run may have, and how many steps of each resource
# class a tenant may run at once.
#
# Reads input.stage, input.plan.steps (resource_class, shards), input.usage.running_steps
# and input.usage.waiting_ahead (steps of the class queued before this one), and the tenant's input.limits.max_large_steps_per_run / max_concurrent_steps, falling
# back per key to data.mc.quotas.defaults (input document mc.policy/v1, docs/policy.md).
# At stage "dispatch" plan.steps holds the one step about to start.
# Messages are built with concat: rego-cpp 1.5.2 sprintf quotes computed strings.
# Every lookup has a default, so a partial input gives fewer denials, never an
# undefined deny.
package mc.quotas

import rego.v1

default plan := {}

plan := p if {
	p := input.plan
	is_object(p)
}

default usage := {}

usage := u if {
	u := input.usage
	is_object(u)
}

default limits := {}

limits := l if {
	l := input.limits
	is_object(l)
}

default stage := ""

stage := s if {
	s := input.stage
	is_string(s)
}

text(x) := x if is_string(x)

else := ""

list(x) := x if is_array(x)

else := []

quoted(s) := concat("", ["\"", s, "\""])

# plan.steps as given; rules skip entries that are not objects. An array, not an object
# keyed by index: rego-cpp builds sets and objects in quadratic time.
steps := list(object.get(plan, "steps", []))

# A step's resource class; the manifest's default is "small".
class_of(step) := c if {
	c := step.resource_class
	is_string(c)
	c != ""
} else := "small"

# A step's shard count: a positive integer, else 1.
shards_of(step) := n if {
	n := step.shards
	is_number(n)
	n >= 1
} else := 1

step_label(step, i) := quoted(step.id) if is_string(step.id)

else := concat("", ["#", format_int(i, 10)])

max_large := n if {
	n := limits.max_large_steps_per_run
	is_number(n)
} else := n if {
	n := data.mc.quotas.defaults.max_large_steps_per_run
	is_number(n)
}

# The concurrency limit of a resource class: the tenant's, else the default; undefined
# (no limit) for a class neither names.
max_concurrent(class) := n if {
	n := limits.max_concurrent_steps[class]
	is_number(n)
} else := n if {
	n := data.mc.quotas.defaults.max_concurrent_steps[class]
	is_number(n)
}

running(class) := n if {
	n := usage.running_steps[class]
	is_number(n)
} else := 0

# Steps of the class waiting in line before the step about to start (stage dispatch).
ahead(class) := n if {
	n := usage.waiting_ahead[class]
	is_number(n)
} else := 0

# A step is large only if it says so (a missing class means small), so select by the field
# first: functions called once per step are what a 1,000-step plan pays for.
large_count := sum([shards_of(s) | some s in steps; is_object(s); s.resource_class == "large"])

# Classes this tenant may not use at all (a limit of 0); usually none, so no step is visited.
tenant_caps := c if {
	c := limits.max_concurrent_steps
	is_object(c)
} else := {}

disabled_classes := [c |
	some c in array.concat(["small", "medium", "large"], [k | tenant_caps[k]])
	max_concurrent(c) <= 0
]

deny contains {
	"code": "large_steps_exceeded",
	"message": concat("", [
		"the plan has ", format_int(large_count, 10), " large steps (counting shards); the limit is ",
		format_int(max_large, 10), " per run",
	]),
	"path": "/plan/steps",
} if {
	large_count > max_large
}

deny contains {
	"code": "resource_class_disabled",
	"message": concat("", [
		"step ", step_label(step, i), " uses resource class ", quoted(class_of(step)),
		", which this tenant may not use (max_concurrent_steps is 0)",
	]),
	"path": concat("", ["/plan/steps/", format_int(i, 10), "/resource_class"]),
} if {
	stage in {"plan", "execute"}
	count(disabled_classes) > 0
	some i, step in steps
	is_object(step)
	class_of(step) in disabled_classes
}

deny contains {
	"code": "quota_exceeded",
	"message": concat("", [
		"starting step ", step_label(step, i), " would make ", format_int(running(class) + 1, 10), " ",
		quoted(class), " steps run at once for this tenant; the limit is ", format_int(max_concurrent(class), 10),
	]),
	"path": concat("", ["/usage/running_steps/", class]),
} if {
	stage == "dispatch"
	some i, step in steps
	is_object(step)
	class := class_of(step)
	ahead(class) <= 0
	running(class) + 1 > max_concurrent(class)
}

# Steps wait in line: a step may not pass the ones of its class queued before it.
deny contains {
	"code": "quota_exceeded",
	"message": concat("", [
		"step ", step_label(step, i), " waits in line behind ", format_int(ahead(class), 10), " earlier ",
		quoted(class), " steps; ", format_int(running(class), 10), " run now and the limit is ",
		format_int(max_concurrent(class), 10), " at once for this tenant",
	]),
	"path": concat("", ["/usage/waiting_ahead/", class]),
} if {
	stage == "dispatch"
	some i, step in steps
	is_object(step)
	class := class_of(step)
	ahead(class) > 0
	running(class) + ahead(class) + 1 > max_concurrent(class)
}

# No warnings yet; defined so that every pack answers the same two queries.
warn := set()
