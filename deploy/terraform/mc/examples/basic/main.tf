# MC on an existing cluster, with a managed PostgreSQL and Redis: terraform init && terraform apply.
terraform {
  required_version = ">= 1.5.0"
  required_providers {
    helm = {
      source  = "hashicorp/helm"
      version = "~> 2.17"
    }
    kubernetes = {
      source  = "hashicorp/kubernetes"
      version = "~> 2.36"
    }
  }
}

variable "owner" {
  description = "Team that owns this installation."
  type        = string
  default     = "orchestrator-platform"
}

variable "database_url" {
  description = "postgres:// URL of the managed database."
  type        = string
  sensitive   = true
}

variable "broker_url" {
  description = "redis:// URL of the managed Redis (database 0)."
  type        = string
  sensitive   = true
}

variable "secret_key" {
  description = "Django secret key, at least 50 random characters."
  type        = string
  sensitive   = true
}

variable "signing_key_file" {
  description = "Path of the PKCS#8 PEM receipt-signing key (manage.py mc_keys generate --dir DIR)."
  type        = string
}

provider "kubernetes" {
  config_path = "~/.kube/config"
}

provider "helm" {
  kubernetes {
    config_path = "~/.kube/config"
  }
}

module "mc" {
  source = "../.."
  name   = "mc"
  region = "eu-west-1"

  tags = {
    service = "mc"
    owner   = var.owner
  }

  image_repository = "registry.example.com/platform/mc"
  image_tag        = "0.1.0"
  allowed_hosts    = ["mc.example.com"]
  canary           = true

  secret_key      = var.secret_key
  database_url    = var.database_url
  broker_url      = var.broker_url
  result_backend  = replace(var.broker_url, "/0", "/2")
  cache_url       = replace(var.broker_url, "/0", "/1")
  signing_key_pem = file(var.signing_key_file)

  values = {
    keda = { enabled = true }
  }
}

output "api_service" {
  value = module.mc.api_service
}
