# MC on Kubernetes: a namespace, MC's Secret (unless an existing one is named) and the Helm
# chart deploy/helm/mc. Providers (helm, kubernetes) are configured by the caller.

locals {
  chart_path = coalesce(var.chart_path, "${path.module}/../../helm/mc")
  namespace  = var.create_namespace ? kubernetes_namespace.mc[0].metadata[0].name : var.namespace
  # The chart names its objects <release> when the release name holds "mc", else <release>-mc.
  fullname    = strcontains(var.name, "mc") ? var.name : "${var.name}-mc"
  secret_name = coalesce(var.existing_secret_name, "${local.fullname}-secrets")
  labels = merge(
    { for key, value in var.tags : "mc.maestro-conductor/${key}" => value },
    {
      "app.kubernetes.io/part-of"     = "maestro-conductor"
      "app.kubernetes.io/managed-by"  = "terraform"
      "topology.kubernetes.io/region" = var.region
    },
  )

  secret_data = {
    "MC_SECRET_KEY"            = var.secret_key
    "MC_DATABASE_URL"          = var.database_url
    "MC_BROKER_URL"            = var.broker_url
    "MC_RESULT_BACKEND"        = var.result_backend
    "MC_CACHE_URL"             = var.cache_url
    "MC_CANARY_WEBHOOK_SECRET" = var.canary_webhook_secret
    "FLOWER_BASIC_AUTH"        = var.flower_basic_auth
    "signing-key.pem"          = var.signing_key_pem
  }

  module_values = {
    image = {
      repository = var.image_repository
      tag        = var.image_tag
      digest     = var.image_digest
    }
    config = {
      allowedHosts = var.allowed_hosts
    }
    secrets = {
      existingSecret = local.secret_name
    }
  }
}

resource "kubernetes_namespace" "mc" {
  count = var.create_namespace ? 1 : 0

  metadata {
    name   = var.namespace
    labels = local.labels
  }
}

resource "kubernetes_secret" "mc" {
  count = var.existing_secret_name == null ? 1 : 0

  metadata {
    name      = local.secret_name
    namespace = local.namespace
    labels    = local.labels
  }

  type = "Opaque"
  data = { for key, value in local.secret_data : key => value if value != null }

  lifecycle {
    precondition {
      condition     = var.secret_key != null && var.database_url != null && var.broker_url != null && var.signing_key_pem != null
      error_message = "Without existing_secret_name, secret_key, database_url, broker_url and signing_key_pem are required."
    }
  }
}

resource "helm_release" "mc" {
  name             = var.name
  chart            = local.chart_path
  namespace        = local.namespace
  create_namespace = false
  atomic           = var.atomic
  wait             = true
  timeout          = var.timeout_seconds

  values = concat(
    var.canary ? [file("${local.chart_path}/values.canary.yaml")] : [],
    var.values_files,
    [yamlencode(var.values), yamlencode(local.module_values)],
  )

  depends_on = [kubernetes_secret.mc]
}
