# Budget pack: what one run may cost, and what a tenant may spend in a day (UTC).
#
# Reads input.plan.estimated_usd, input.usage.spend_today_usd and the tenant's
# input.limits.max_cost_per_run_usd / daily_spend_cap_usd, falling back to
# data.mc.budget.defaults (input document mc.policy/v1, docs/policy.md).
# A missing or non-numeric amount counts as 0 and a missing or non-numeric cap as the
# default, so a partial input gives fewer denials, never an undefined deny.
package mc.budget

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

# amount(x) is x when it is a number, 0 otherwise.
amount(x) := x if is_number(x)

else := 0

usd(x) := sprintf("$%.2f", [x])

# The tenant's cap for key, else the pack's default, else no cap (undefined).
cap(key) := c if {
	c := limits[key]
	is_number(c)
} else := c if {
	c := data.mc.budget.defaults[key]
	is_number(c)
}

# Warn from this percentage of a cap. Compared as part * 100 >= percent * cap, because
# 0.8 * 1.5 is 1.2000000000000002 in floating point and would miss an estimate of $1.20.
default warn_percent := 80

warn_percent := p if {
	p := data.mc.budget.warn_percent
	is_number(p)
}

near(part, whole) if {
	part <= whole
	part > 0
	part * 100 >= warn_percent * whole
}

estimate := amount(object.get(plan, "estimated_usd", 0))

spent_today := amount(object.get(usage, "spend_today_usd", 0))

day_total := spent_today + estimate

run_cap := cap("max_cost_per_run_usd")

daily_cap := cap("daily_spend_cap_usd")

deny contains {
	"code": "run_cost_exceeded",
	"message": concat("", ["estimated cost ", usd(estimate), " exceeds the cap ", usd(run_cap), " per run"]),
	"path": "/plan/estimated_usd",
} if {
	estimate > run_cap
}

deny contains {
	"code": "daily_spend_exceeded",
	"message": concat("", [
		"estimated cost ", usd(estimate), " on top of ", usd(spent_today), " spent today makes ",
		usd(day_total), ", over the daily cap ", usd(daily_cap),
	]),
	"path": "/usage/spend_today_usd",
} if {
	day_total > daily_cap
}

warn contains {
	"code": "run_cost_near_cap",
	"message": concat("", [
		"estimated cost ", usd(estimate), " is ", percent(estimate, run_cap), " of the cap ", usd(run_cap), " per run",
	]),
	"path": "/plan/estimated_usd",
} if {
	near(estimate, run_cap)
}

warn contains {
	"code": "daily_spend_near_cap",
	"message": concat("", [
		"estimated cost ", usd(estimate), " on top of ", usd(spent_today), " spent today makes ",
		usd(day_total), ", ", percent(day_total, daily_cap), " of the daily cap ", usd(daily_cap),
	]),
	"path": "/usage/spend_today_usd",
} if {
	near(day_total, daily_cap)
}

percent(part, whole) := concat("", [format_int(floor((part * 100) / whole), 10), "%"]) if whole > 0

else := "100%"
