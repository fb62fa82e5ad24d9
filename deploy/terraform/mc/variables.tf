variable "name" {
  description = "Name of the MC installation: the Helm release name, and the prefix of what the chart creates."
  type        = string
  default     = "mc"

  validation {
    condition     = can(regex("^[a-z]([-a-z0-9]{0,30}[a-z0-9])?$", var.name))
    error_message = "name must be a DNS label of at most 32 characters: lowercase letters, digits and '-'."
  }
}

variable "region" {
  description = "Region the cluster runs in (recorded as a label, and MC's default region for policy decisions is the manifests' own)."
  type        = string

  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]+$", var.region))
    error_message = "region must look like eu-west-1 or us-central-1."
  }
}

variable "tags" {
  description = "Labels for every object the module creates; must name the service and its owner (the sprint plan's shape)."
  type        = map(string)

  validation {
    condition     = contains(keys(var.tags), "service") && contains(keys(var.tags), "owner")
    error_message = "tags must contain at least service and owner."
  }
}

variable "namespace" {
  description = "Kubernetes namespace to install MC into."
  type        = string
  default     = "mc"

  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", var.namespace))
    error_message = "namespace must be a DNS label."
  }
}

variable "create_namespace" {
  description = "Create the namespace (false: it exists already)."
  type        = bool
  default     = true
}

variable "chart_path" {
  description = "Path of the MC Helm chart (default: the chart beside this module, deploy/helm/mc)."
  type        = string
  default     = null
}

variable "image_repository" {
  description = "Container image of MC (built from deploy/Dockerfile)."
  type        = string
}

variable "image_tag" {
  description = "Version tag of the image; never latest."
  type        = string

  validation {
    condition     = var.image_tag != "latest" && length(var.image_tag) > 0
    error_message = "image_tag must be a pinned version, not latest."
  }
}

variable "image_digest" {
  description = "sha256 digest of the image (recommended: what runs is then exactly what was scanned)."
  type        = string
  default     = ""

  validation {
    condition     = var.image_digest == "" || can(regex("^sha256:[0-9a-f]{64}$", var.image_digest))
    error_message = "image_digest must be empty or sha256:<64 hex digits>."
  }
}

variable "allowed_hosts" {
  description = "Host names MC serves (MC_ALLOWED_HOSTS); the first is the Ingress host."
  type        = list(string)

  validation {
    condition     = length(var.allowed_hosts) > 0 && !contains(var.allowed_hosts, "*")
    error_message = "allowed_hosts must list at least one host name, and not *."
  }
}

variable "canary" {
  description = "Apply the chart's values.canary.yaml (the sprint plan's canary weights and budgets)."
  type        = bool
  default     = false
}

variable "values" {
  description = "Further chart values, as an object (merged last; deploy/helm/mc/values.yaml lists them). Never secrets."
  type        = any
  default     = {}
}

variable "values_files" {
  description = "Further chart values, as YAML documents (e.g. file(\"values.production.yaml\")), applied before var.values."
  type        = list(string)
  default     = []
}

# --- secrets: from an existing Secret, or from these variables ---------------------------

variable "existing_secret_name" {
  description = "Name of an existing Secret in the namespace holding MC's secrets (then the secret variables below are ignored)."
  type        = string
  default     = null
}

variable "secret_key" {
  description = "Django secret key (MC_SECRET_KEY): at least 50 random characters."
  type        = string
  default     = null
  sensitive   = true

  validation {
    condition     = var.secret_key == null || length(coalesce(var.secret_key, "x")) >= 50
    error_message = "secret_key must be at least 50 characters."
  }
}

variable "database_url" {
  description = "URL of an existing PostgreSQL database (MC_DATABASE_URL), e.g. postgres://mc:pw@host:5432/mc."
  type        = string
  default     = null
  sensitive   = true

  validation {
    condition     = var.database_url == null || can(regex("^postgres(ql)?://", coalesce(var.database_url, "postgres://")))
    error_message = "database_url must be a postgres:// URL."
  }
}

variable "broker_url" {
  description = "URL of an existing Redis (or RabbitMQ) broker (MC_BROKER_URL), e.g. redis://:pw@host:6379/0."
  type        = string
  default     = null
  sensitive   = true

  validation {
    condition     = var.broker_url == null || can(regex("^(rediss?|amqps?)://", coalesce(var.broker_url, "redis://")))
    error_message = "broker_url must be a redis://, rediss:// or amqp:// URL."
  }
}

variable "result_backend" {
  description = "Celery result backend (MC_RESULT_BACKEND): a redis:// URL, or null for the database."
  type        = string
  default     = null
  sensitive   = true
}

variable "cache_url" {
  description = "Django cache (MC_CACHE_URL), e.g. redis://host:6379/1; null for in-process memory."
  type        = string
  default     = null
  sensitive   = true
}

variable "signing_key_pem" {
  description = "Receipt-signing key: a PKCS#8 PEM ECDSA P-256 private key (manage.py mc_keys generate, or openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256)."
  type        = string
  default     = null
  sensitive   = true

  validation {
    condition     = var.signing_key_pem == null || startswith(coalesce(var.signing_key_pem, "-----BEGIN PRIVATE KEY-----"), "-----BEGIN PRIVATE KEY-----")
    error_message = "signing_key_pem must be a PKCS#8 PEM private key (-----BEGIN PRIVATE KEY-----)."
  }
}

variable "canary_webhook_secret" {
  description = "HMAC key of the canary breach webhook (MC_CANARY_WEBHOOK_SECRET); null disables the webhook."
  type        = string
  default     = null
  sensitive   = true
}

variable "flower_basic_auth" {
  description = "Flower login as user:password (FLOWER_BASIC_AUTH), when the chart's flower.enabled is set."
  type        = string
  default     = null
  sensitive   = true
}

# --- the release ---------------------------------------------------------------------------

variable "atomic" {
  description = "Roll the release back by itself when an install or upgrade fails (helm --atomic)."
  type        = bool
  default     = true
}

variable "timeout_seconds" {
  description = "Seconds Helm waits for the migrations Job and the rollout."
  type        = number
  default     = 900

  validation {
    condition     = var.timeout_seconds >= 60
    error_message = "timeout_seconds must be at least 60."
  }
}
