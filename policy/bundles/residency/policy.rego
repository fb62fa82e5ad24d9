# Residency pack: where a run may execute.
#
# Reads input.request.region, input.manifest.region and input.manifest.tasks[_].regions
# (input document mc.policy/v1, docs/policy.md). Regions compare case-insensitively.
# Messages are built with concat: rego-cpp 1.5.2 sprintf quotes computed strings
# ("%s" of lower(x) gives "\"eu\""), so sprintf only formats numbers here.
# Every lookup has a default, so a partial input gives fewer denials, never an
# undefined deny.
package mc.residency

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

# text(x) is x when it is a string, "" otherwise (missing keys, nulls, numbers).
text(x) := x if is_string(x)

else := ""

norm(region) := lower(trim_space(text(region)))

request_region := norm(object.get(request, "region", ""))

manifest_region := norm(object.get(manifest, "region", ""))

default banned_regions := []

banned_regions := b if {
	b := data.mc.residency.banned_regions
	is_array(b)
}

default tasks := []

tasks := t if {
	t := manifest.tasks
	is_array(t)
}

# The banned entry matching a region: the whole region ("KP") or its country
# prefix ("ru" of "ru-central-1"), both case-insensitive.
banned_match(region) := entry if {
	region != ""
	some entry in banned_regions
	b := norm(entry)
	b != ""
	b in {region, split(region, "-")[0]}
}

# quoted(s) is s in double quotes, for messages.
quoted(s) := concat("", ["\"", s, "\""])

deny contains {
	"code": "region_mismatch",
	"message": concat("", [
		"requested region ", quoted(request_region),
		" differs from the workflow's region ", quoted(manifest_region),
	]),
	"path": "/request/region",
} if {
	request_region != ""
	manifest_region != ""
	request_region != manifest_region
}

deny contains {
	"code": "region_banned",
	"message": concat("", [
		"requested region ", quoted(request_region),
		" is banned: it matches the banned entry ", quoted(text(entry)),
	]),
	"path": "/request/region",
} if {
	entry := banned_match(request_region)
}

deny contains {
	"code": "region_banned",
	"message": concat("", [
		"workflow region ", quoted(manifest_region),
		" is banned: it matches the banned entry ", quoted(text(entry)),
	]),
	"path": "/manifest/region",
} if {
	entry := banned_match(manifest_region)
}

deny contains {
	"code": "task_region_excluded",
	"message": concat("", [
		"task ", quoted(task_id(task, i)), " may only run in ",
		concat(", ", [text(r) | some r in task.regions]), ", not in ", requested_label,
	]),
	"path": sprintf("/manifest/tasks/%d/regions", [i]),
} if {
	some i, task in tasks
	is_array(task.regions)
	count(task.regions) > 0
	not request_region in {norm(r) | some r in task.regions}
}

requested_label := concat("", ["the requested region ", quoted(request_region)]) if request_region != ""

else := "an unspecified region (the request gives none)"

task_id(task, i) := task.id if is_string(task.id)

else := concat("", ["#", format_int(i, 10)])

warn contains {
	"code": "region_unset",
	"message": "the workflow sets no region: it may run in any region that is not banned",
	"path": "/manifest/region",
} if {
	manifest_region == ""
}
