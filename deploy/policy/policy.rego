# Deploy pack: MC's own Kubernetes manifests, as the chart renders them (deploy/helm/mc).
#
# Evaluated by MC's policy engine (policy/engine) over each rendered document as `input`,
# the way the sprint plan's CI runs conftest. Each deny names the code, a message and the
# JSON path of what is wrong. Messages are built with concat (rego-cpp's sprintf quotes
# computed strings).
package mc.deploy

import rego.v1

workload_kinds := {"Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"}

# The pod spec of a workload or a bare Pod, and where it sits in the document.
pod := {"spec": input.spec.template.spec, "path": "/spec/template/spec"} if {
	input.kind in workload_kinds
}

pod := {"spec": input.spec, "path": "/spec"} if {
	input.kind == "Pod"
}

name := concat("/", [input.kind, object.get(input, ["metadata", "name"], "")])

# Every container, init containers too: [pod path field, index, container].
containers contains [field, i, c] if {
	some field in ["containers", "initContainers"]
	some i, c in object.get(pod.spec, field, [])
}

where(field, i) := concat("", [pod.path, "/", field, "/", format_int(i, 10)])

long_running if input.kind in {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"}

# --- non-root -------------------------------------------------------------------------

pod_non_root if pod.spec.securityContext.runAsNonRoot == true

deny contains {
	"code": "runs_as_root",
	"message": concat("", [name, " container ", c.name, " may run as root: set runAsNonRoot: true"]),
	"path": concat("", [where(field, i), "/securityContext/runAsNonRoot"]),
} if {
	some [field, i, c] in containers
	not pod_non_root
	not c.securityContext.runAsNonRoot == true
}

deny contains {
	"code": "runs_as_root",
	"message": concat("", [name, " container ", c.name, " sets runAsUser: 0"]),
	"path": concat("", [where(field, i), "/securityContext/runAsUser"]),
} if {
	some [field, i, c] in containers
	c.securityContext.runAsUser == 0
}

deny contains {
	"code": "privilege_escalation",
	"message": concat("", [name, " container ", c.name, " must set allowPrivilegeEscalation: false"]),
	"path": concat("", [where(field, i), "/securityContext/allowPrivilegeEscalation"]),
} if {
	some [field, i, c] in containers
	not c.securityContext.allowPrivilegeEscalation == false
}

# --- resources ------------------------------------------------------------------------

deny contains {
	"code": "resources_missing",
	"message": concat("", [name, " container ", c.name, " has no ", kind, ".", resource]),
	"path": concat("", [where(field, i), "/resources/", kind, "/", resource]),
} if {
	some [field, i, c] in containers
	some [kind, resource] in [["requests", "cpu"], ["requests", "memory"], ["limits", "memory"]]
	not c.resources[kind][resource]
}

# --- images ---------------------------------------------------------------------------

image_tag(image) := tag if {
	not contains(image, "@")
	parts := split(image, "/")
	last := parts[count(parts) - 1]
	contains(last, ":")
	tag := split(last, ":")[1]
}

unpinned(image) if {
	not contains(image, "@")
	not image_tag(image)
}

unpinned(image) if image_tag(image) == "latest"

deny contains {
	"code": "image_not_pinned",
	"message": concat("", [name, " container ", c.name, " runs ", c.image, ": pin a version tag or a digest, not latest"]),
	"path": concat("", [where(field, i), "/image"]),
} if {
	some [field, i, c] in containers
	unpinned(c.image)
}

# --- probes ---------------------------------------------------------------------------

deny contains {
	"code": "liveness_probe_missing",
	"message": concat("", [name, " container ", c.name, " has no livenessProbe"]),
	"path": concat("", [pod.path, "/containers/", format_int(i, 10), "/livenessProbe"]),
} if {
	long_running
	some i, c in pod.spec.containers
	not c.livenessProbe
}

# A container that serves a port must say when it is ready for traffic.
deny contains {
	"code": "readiness_probe_missing",
	"message": concat("", [name, " container ", c.name, " serves a port but has no readinessProbe"]),
	"path": concat("", [pod.path, "/containers/", format_int(i, 10), "/readinessProbe"]),
} if {
	long_running
	some i, c in pod.spec.containers
	count(object.get(c, "ports", [])) > 0
	not c.readinessProbe
}

warn contains {
	"code": "read_only_root_filesystem",
	"message": concat("", [name, " container ", c.name, " has a writable root filesystem"]),
	"path": concat("", [where(field, i), "/securityContext/readOnlyRootFilesystem"]),
} if {
	some [field, i, c] in containers
	not c.securityContext.readOnlyRootFilesystem == true
}
