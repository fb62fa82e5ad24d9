output "namespace" {
  description = "Namespace MC runs in."
  value       = local.namespace
}

output "release_name" {
  description = "Name of the Helm release (helm rollback <name> <revision> -n <namespace>)."
  value       = helm_release.mc.name
}

output "release_revision" {
  description = "Revision of the Helm release after this apply: the one to roll back to after a bad upgrade."
  value       = helm_release.mc.metadata[0].revision
}

output "chart_version" {
  description = "Version of the chart installed."
  value       = helm_release.mc.metadata[0].version
}

output "secret_name" {
  description = "Secret holding MC's secret key, URLs and receipt-signing key."
  value       = local.secret_name
}

output "api_service" {
  description = "In-cluster address of the API (Service port 8000)."
  value       = "http://${local.fullname}-api.${local.namespace}.svc:8000"
}
