package mc.budget_test

import rego.v1

import data.mc.budget

# rego-cpp 1.5.2 crashes on `with input as {...}`, so tests replace input.plan,
# input.usage and input.limits one at a time. Defaults (data.json): $1.50 per run,
# $50.00 per day, warnings from 80%.

codes(findings) := {f.code | some f in findings}

# --- allowed ---

test_cheap_run_allowed_without_warnings if {
	d := budget.deny with input.plan as {"estimated_usd": 0.42} with input.usage as {"spend_today_usd": 12.0}
	w := budget.warn with input.plan as {"estimated_usd": 0.42} with input.usage as {"spend_today_usd": 12.0}
	d == set()
	w == set()
}

test_exactly_at_run_cap_allowed if {
	d := budget.deny with input.plan as {"estimated_usd": 1.5}
	d == set()
}

test_exactly_at_daily_cap_allowed if {
	d := budget.deny with input.plan as {"estimated_usd": 1.0} with input.usage as {"spend_today_usd": 49.0}
	d == set()
}

test_tenant_limit_raises_run_cap if {
	d := budget.deny with input.plan as {"estimated_usd": 2.1} with input.limits as {"max_cost_per_run_usd": 5}
	d == set()
}

# --- run_cost_exceeded ---

test_run_cost_over_default_cap_denied if {
	d := budget.deny with input.plan as {"estimated_usd": 2.1} with input.usage as {"spend_today_usd": 0}
	d == {{
		"code": "run_cost_exceeded",
		"message": "estimated cost $2.10 exceeds the cap $1.50 per run",
		"path": "/plan/estimated_usd",
	}}
}

test_run_cost_over_tenant_cap_denied if {
	d := budget.deny with input.plan as {"estimated_usd": 0.6} with input.limits as {"max_cost_per_run_usd": 0.5}
	[f] := [f | some f in d]
	f.message == "estimated cost $0.60 exceeds the cap $0.50 per run"
}

test_run_cap_default_from_data if {
	d := budget.deny with input.plan as {"estimated_usd": 0.6}
		with data.mc.budget.defaults.max_cost_per_run_usd as 0.5
	codes(d) == {"run_cost_exceeded"}
}

test_zero_cap_denies_any_cost if {
	d := budget.deny with input.plan as {"estimated_usd": 0.01} with input.limits as {"max_cost_per_run_usd": 0}
	codes(d) == {"run_cost_exceeded"}
}

# --- daily_spend_exceeded ---

test_daily_spend_over_cap_denied if {
	d := budget.deny with input.plan as {"estimated_usd": 0.42} with input.usage as {"spend_today_usd": 49.8}
	d == {{
		"code": "daily_spend_exceeded",
		"message": "estimated cost $0.42 on top of $49.80 spent today makes $50.22, over the daily cap $50.00",
		"path": "/usage/spend_today_usd",
	}}
}

test_daily_spend_over_tenant_cap_denied if {
	d := budget.deny with input.plan as {"estimated_usd": 1} with input.usage as {"spend_today_usd": 9.5}
		with input.limits as {"daily_spend_cap_usd": 10}
	codes(d) == {"daily_spend_exceeded"}
}

test_both_caps_exceeded if {
	d := budget.deny with input.plan as {"estimated_usd": 3} with input.usage as {"spend_today_usd": 49}
	codes(d) == {"run_cost_exceeded", "daily_spend_exceeded"}
}

# --- run_cost_near_cap (warn) ---

test_warn_at_80_percent_of_run_cap if {
	w := budget.warn with input.plan as {"estimated_usd": 1.2}
	w == {{
		"code": "run_cost_near_cap",
		"message": "estimated cost $1.20 is 80% of the cap $1.50 per run",
		"path": "/plan/estimated_usd",
	}}
}

test_no_warn_below_80_percent_of_run_cap if {
	w := budget.warn with input.plan as {"estimated_usd": 1.19}
	w == set()
}

test_no_run_warn_when_denied if {
	w := budget.warn with input.plan as {"estimated_usd": 2}
	w == set()
}

# --- daily_spend_near_cap (warn) ---

test_warn_at_80_percent_of_daily_cap if {
	w := budget.warn with input.plan as {"estimated_usd": 0.5} with input.usage as {"spend_today_usd": 39.5}
	w == {{
		"code": "daily_spend_near_cap",
		"message": "estimated cost $0.50 on top of $39.50 spent today makes $40.00, 80% of the daily cap $50.00",
		"path": "/usage/spend_today_usd",
	}}
}

test_no_daily_warn_when_denied if {
	w := budget.warn with input.plan as {"estimated_usd": 0.5} with input.usage as {"spend_today_usd": 60}
	w == set()
}

test_warn_percent_from_data if {
	w := budget.warn with input.plan as {"estimated_usd": 0.8} with data.mc.budget.warn_percent as 50
	codes(w) == {"run_cost_near_cap"}
}

# --- partial and malformed input ---

test_empty_input_denies_nothing if {
	budget.deny == set()
	budget.warn == set()
}

test_missing_usage_counts_as_nothing_spent if {
	d := budget.deny with input.plan as {"estimated_usd": 1.0}
	d == set()
}

test_usage_alone_over_cap_denied if {
	# No plan (estimate 0): spend already over the cap still denies.
	d := budget.deny with input.usage as {"spend_today_usd": 51}
	codes(d) == {"daily_spend_exceeded"}
}

test_non_numeric_values_fall_back if {
	d := budget.deny with input.plan as {"estimated_usd": 2.1} with input.limits as {"max_cost_per_run_usd": "lots"}
		with input.usage as {"spend_today_usd": null}
	codes(d) == {"run_cost_exceeded"}
}

test_non_numeric_estimate_counts_as_zero if {
	d := budget.deny with input.plan as {"estimated_usd": "2.10"}
	d == set()
}
