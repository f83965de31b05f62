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
