variable "region" {
  type        = string
  description = "AWS region of the environment."
  default     = "eu-west-1"
}

variable "vpc_id" {
  type        = string
  description = "VPC for MSK and the services."
}

variable "private_subnet_ids" {
  type        = list(string)
  description = "Private subnets, one per availability zone (MSK takes 2 or 3)."
  validation {
    condition     = length(var.private_subnet_ids) >= 2 && length(var.private_subnet_ids) <= 3
    error_message = "private_subnet_ids: 2 or 3 subnets in distinct availability zones."
  }
}

variable "image_repository" {
  type        = string
  description = "Registry path of the images, without the service: <repository>/<service>:<image_tag> (e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com/taina)."
}

variable "image_tag" {
  type        = string
  description = "Release tag of every service image."
  validation {
    condition     = length(var.image_tag) > 0 && var.image_tag != "latest"
    error_message = "image_tag: a release tag, not latest."
  }
}

variable "scram_secret_arns" {
  type        = list(string)
  description = "Secrets Manager secrets (AmazonMSK_*) with the SCRAM users of the services."
}

variable "kafka_username_secret_arn" {
  type        = string
  description = "Secrets Manager ARN with a JSON key suffix (…:username::) of the services' Kafka SCRAM user name."
}

variable "kafka_password_secret_arn" {
  type        = string
  description = "Secrets Manager ARN with a JSON key suffix (…:password::) of that user's password."
}

variable "secret_arns" {
  type        = map(string)
  description = "Other secrets by environment variable: TAINA_QDRANT_API_KEY, TAINA_EMBED_API_KEY, TAINA_LLM_API_KEY, TAINA_DATABASE_URL, TAINA_BOOKING_CLIENT_SECRET => Secrets Manager ARN."
  default     = {}
}

variable "api_keys_secret_arn" {
  type        = string
  description = "Secrets Manager secret with the API keys file of ingest, rag and voice-gateway ('TENANT_ID SHA256_HEX_OF_KEY' lines)."
}

variable "secrets_kms_key_arns" {
  type        = list(string)
  description = "Customer managed KMS keys of those secrets."
  default     = []
}

variable "qdrant_url" {
  type        = string
  description = "Qdrant REST URL reachable from the VPC."
}

variable "api_target_group_arns" {
  type        = map(string)
  description = "Load balancer target groups of the public APIs by service (ingest, rag, voice-gateway)."
  default     = {}
}

variable "ingress_security_group_ids" {
  type        = list(string)
  description = "Security groups allowed to reach the services' HTTP ports (load balancer, Prometheus)."
  default     = []
}

# --- What differs between environments (../environments/<env>.tfvars) ----------------------

variable "env" {
  type        = string
  description = "Environment name: names the cluster, MSK and every service (taina-<env>-…) and tags them."
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,20}$", var.env))
    error_message = "env: 2-21 lowercase letters, digits or dashes, starting with a letter."
  }
}

variable "log_level" {
  type        = string
  description = "TAINA_LOG_LEVEL of every service."
  default     = "info"
  validation {
    condition     = contains(["debug", "info", "warn", "error"], var.log_level)
    error_message = "log_level: debug, info, warn or error."
  }
}

variable "scaling" {
  type = map(object({
    min = number
    max = number
  }))
  description = "Tasks per service (ingest, embedder, rag, voice-gateway, appointments): autoscaling range; min is also the count at creation."
  default = {
    ingest        = { min = 2, max = 6 }
    embedder      = { min = 2, max = 12 }
    rag           = { min = 2, max = 6 }
    voice-gateway = { min = 2, max = 6 }
    appointments  = { min = 1, max = 3 }
  }
  validation {
    condition = alltrue([for s in ["ingest", "embedder", "rag", "voice-gateway", "appointments"] :
    contains(keys(var.scaling), s) && var.scaling[s].min <= var.scaling[s].max])
    error_message = "scaling: an entry for each of the five services, min <= max."
  }
  validation {
    # a consumer beyond its input topic's partitions (schemas/topics.json) would sit idle
    condition     = var.scaling["ingest"].max <= 6 && var.scaling["embedder"].max <= 12
    error_message = "scaling: ingest at most 6 tasks (tickets.raw has 6 partitions), embedder at most 12 (tickets.enriched has 12)."
  }
}

variable "broker_instance_type" {
  type        = string
  description = "MSK broker instance type."
  default     = "kafka.m7g.large"
}

variable "broker_count" {
  type        = number
  description = "MSK brokers (a multiple of the number of subnets)."
  default     = 3
}

variable "broker_volume_gb" {
  type        = number
  description = "EBS storage per MSK broker, GB."
  default     = 500
}

variable "log_retention_days" {
  type        = number
  description = "CloudWatch retention of the services' and brokers' logs, days."
  default     = 90
}
