variable "name" {
  type        = string
  description = "Cluster name, also the prefix of its security group, log group and KMS alias."
  validation {
    condition     = can(regex("^[a-zA-Z][a-zA-Z0-9-]{0,63}$", var.name))
    error_message = "name: a letter, then up to 63 letters, digits or dashes."
  }
}

variable "kafka_version" {
  type        = string
  description = "Apache Kafka version of the brokers (Taina needs 2.8 or later)."
  default     = "3.6.0"
  validation {
    condition     = can(regex("^(2\\.8|3\\.[0-9]+)\\.[0-9]+", var.kafka_version))
    error_message = "kafka_version: 2.8.x or 3.x."
  }
}

variable "broker_instance_type" {
  type        = string
  description = "Broker instance type, e.g. kafka.t3.small (sandbox) or kafka.m7g.large (live)."
  default     = "kafka.m7g.large"
  validation {
    condition     = startswith(var.broker_instance_type, "kafka.")
    error_message = "broker_instance_type: an MSK broker type (kafka.*)."
  }
}

variable "broker_count" {
  type        = number
  description = "Number of brokers: a multiple of the number of subnets (one per availability zone); 3 for topics with replication factor 3."
  default     = 3
  validation {
    condition     = var.broker_count >= 2 && floor(var.broker_count) == var.broker_count
    error_message = "broker_count: a whole number, at least 2."
  }
}

variable "ebs_volume_size_gb" {
  type        = number
  description = "Storage per broker in GiB."
  default     = 100
  validation {
    condition     = var.ebs_volume_size_gb >= 1 && var.ebs_volume_size_gb <= 16384
    error_message = "ebs_volume_size_gb: 1 to 16384."
  }
}

variable "vpc_id" {
  type        = string
  description = "VPC of the brokers."
}

variable "subnet_ids" {
  type        = list(string)
  description = "Private subnets for the brokers, one per availability zone (2 or 3)."
  validation {
    condition     = length(var.subnet_ids) >= 2 && length(var.subnet_ids) <= 3
    error_message = "subnet_ids: 2 or 3 subnets in distinct availability zones."
  }
}

variable "client_security_groups" {
  type        = map(string)
  description = "Security groups of the clients allowed to reach the brokers, by a name known at plan time (e.g. the service) => security group id."
  default     = {}
}

variable "auth_mode" {
  type        = string
  description = "Client authentication: scram (SASL/SCRAM-SHA-512, port 9096) or iam (AWS_MSK_IAM / OAUTHBEARER, port 9098). Both over TLS."
  default     = "scram"
  validation {
    condition     = contains(["scram", "iam"], var.auth_mode)
    error_message = "auth_mode: scram or iam."
  }
}

variable "scram_secret_arns" {
  type        = list(string)
  description = "Secrets Manager secrets (named AmazonMSK_*, encrypted with a customer managed key) holding SCRAM users, associated with the cluster when auth_mode is scram."
  default     = []
  validation {
    condition     = alltrue([for a in var.scram_secret_arns : can(regex("^arn:aws[a-z-]*:secretsmanager:.*:secret:AmazonMSK_", a))])
    error_message = "scram_secret_arns: Secrets Manager ARNs whose names start with AmazonMSK_."
  }
}

variable "kms_key_arn" {
  type        = string
  description = "KMS key for encryption at rest; null creates a key for this cluster."
  default     = null
}

variable "log_retention_days" {
  type        = number
  description = "Retention of the broker log group in days."
  default     = 30
  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1827, 3653], var.log_retention_days)
    error_message = "log_retention_days: a value CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, ...)."
  }
}

variable "enhanced_monitoring" {
  type        = string
  description = "MSK enhanced monitoring level (DEFAULT, PER_BROKER, PER_TOPIC_PER_BROKER, PER_TOPIC_PER_PARTITION)."
  default     = "PER_TOPIC_PER_BROKER"
  validation {
    condition     = contains(["DEFAULT", "PER_BROKER", "PER_TOPIC_PER_BROKER", "PER_TOPIC_PER_PARTITION"], var.enhanced_monitoring)
    error_message = "enhanced_monitoring: DEFAULT, PER_BROKER, PER_TOPIC_PER_BROKER or PER_TOPIC_PER_PARTITION."
  }
}

variable "tags" {
  type        = map(string)
  description = "Tags for every resource of the module."
  default     = {}
}
