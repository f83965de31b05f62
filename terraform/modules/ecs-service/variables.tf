variable "name" {
  type        = string
  description = "Taina service: ingest, embedder, rag, voice-gateway or appointments (the image runs taina-<name>)."
  validation {
    condition     = contains(["ingest", "embedder", "rag", "voice-gateway", "appointments"], var.name)
    error_message = "name: one of ingest, embedder, rag, voice-gateway, appointments."
  }
}

variable "name_prefix" {
  type        = string
  description = "Prefix of every resource name (e.g. taina-live), so environments can share an account."
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,23}$", var.name_prefix))
    error_message = "name_prefix: a lower-case letter then up to 23 lower-case letters, digits or dashes."
  }
}

variable "image" {
  type        = string
  description = "Container image with a tag or digest (docker/Dockerfile built with SERVICE=<name>)."
  validation {
    condition     = can(regex("[:@]", var.image))
    error_message = "image: pin a tag or digest (repo:tag or repo@sha256:...)."
  }
}

variable "container_port" {
  type        = number
  description = "HTTP port of the service (/health, /ready, /metrics and its API): 8080 to 8084 as shipped."
  validation {
    condition     = var.container_port >= 1 && var.container_port <= 65535
    error_message = "container_port: 1 to 65535."
  }
}

variable "cpu" {
  type        = number
  description = "Fargate task CPU units (256 = 0.25 vCPU)."
  default     = 512
  validation {
    condition     = contains([256, 512, 1024, 2048, 4096, 8192, 16384], var.cpu)
    error_message = "cpu: a Fargate size: 256, 512, 1024, 2048, 4096, 8192 or 16384."
  }
}

variable "memory" {
  type        = number
  description = "Fargate task memory in MiB (must fit the CPU size, e.g. 1024 for 512 CPU)."
  default     = 1024
  validation {
    condition     = var.memory >= 512 && var.memory <= 122880
    error_message = "memory: 512 to 122880 MiB."
  }
}

variable "cluster_arn" {
  type        = string
  description = "ECS cluster to run the service in."
}

variable "cluster_name" {
  type        = string
  description = "Name of that ECS cluster (for the autoscaling resource id)."
}

variable "vpc_id" {
  type        = string
  description = "VPC of the tasks."
}

variable "subnet_ids" {
  type        = list(string)
  description = "Private subnets of the tasks."
  validation {
    condition     = length(var.subnet_ids) >= 1
    error_message = "subnet_ids: at least one subnet."
  }
}

variable "ingress_security_group_ids" {
  type        = list(string)
  description = "Security groups allowed to reach container_port (a load balancer, other services, Prometheus)."
  default     = []
}

variable "target_group_arn" {
  type        = string
  description = "Load balancer target group for the HTTP API; null for workers without one."
  default     = null
}

variable "environment" {
  type        = map(string)
  description = "TAINA_* settings that are not secrets (see the service's --help). Secrets go in secrets."
  default     = {}
  validation {
    condition     = alltrue([for k, v in var.environment : !can(regex("(PASSWORD|SECRET|API_KEY|TOKEN|DATABASE_URL)$", k))])
    error_message = "environment: a secret-looking key (…PASSWORD, …SECRET, …API_KEY, …TOKEN, DATABASE_URL) belongs in secrets."
  }
}

variable "secrets" {
  type        = map(string)
  description = "Environment variables read from Secrets Manager at start: name => secret ARN (or ARN:json-key:: for one key of a JSON secret)."
  default     = {}
  validation {
    condition     = alltrue([for k, v in var.secrets : can(regex("^arn:aws[a-z-]*:secretsmanager:", v))])
    error_message = "secrets: every value is a Secrets Manager ARN."
  }
}

variable "api_keys_secret_arn" {
  type        = string
  description = "Secrets Manager secret holding the API keys file (lines 'TENANT_ID SHA256_HEX_OF_KEY'), for services that authenticate requests: an init container writes it to /run/taina/api_keys and TAINA_API_KEYS_FILE points there. null: none."
  default     = null
  validation {
    condition     = var.api_keys_secret_arn == null ? true : can(regex("^arn:aws[a-z-]*:secretsmanager:", var.api_keys_secret_arn))
    error_message = "api_keys_secret_arn: a Secrets Manager ARN."
  }
}

variable "secrets_kms_key_arns" {
  type        = list(string)
  description = "Customer managed KMS keys of those secrets (the execution role may decrypt with them only)."
  default     = []
}

variable "msk_iam" {
  type = object({
    cluster_arn  = string
    topics_read  = list(string)
    topics_write = list(string)
    groups       = list(string)
  })
  description = "With MSK IAM auth: the cluster and the topics and consumer groups this service uses (the task role gets exactly those). null with SCRAM, whose credentials come in secrets."
  default     = null
}

variable "desired_count" {
  type        = number
  description = "Tasks at creation; autoscaling moves it between min_capacity and max_capacity."
  default     = 1
}

variable "min_capacity" {
  type        = number
  description = "Fewest tasks."
  default     = 1
  validation {
    condition     = var.min_capacity >= 0
    error_message = "min_capacity: 0 or more."
  }
}

variable "max_capacity" {
  type        = number
  description = "Most tasks. For a Kafka worker, no more than the partitions of its input topic (tickets.raw 6, tickets.enriched 12): more would idle."
  default     = 2
  validation {
    condition     = var.max_capacity >= 1 && var.max_capacity <= 100
    error_message = "max_capacity: 1 to 100."
  }
}

variable "cpu_target_percent" {
  type        = number
  description = "Target average CPU utilization for target tracking."
  default     = 60
  validation {
    condition     = var.cpu_target_percent >= 10 && var.cpu_target_percent <= 90
    error_message = "cpu_target_percent: 10 to 90."
  }
}

variable "lag_scaling" {
  type = object({
    consumer_group  = string
    target_per_task = number
  })
  description = "Target tracking on the ConsumerLagSum EMF metric of this service's consumer group (average per task); null for services that consume nothing. Turns on TAINA_METRICS_EMF."
  default     = null
  validation {
    condition     = var.lag_scaling == null ? true : var.lag_scaling.target_per_task > 0
    error_message = "lag_scaling.target_per_task: more than 0 records."
  }
}

variable "emf_namespace" {
  type        = string
  description = "CloudWatch namespace of the EMF lines (TAINA_METRICS_EMF_NAMESPACE)."
  default     = "Taina"
  validation {
    condition     = can(regex("^[a-zA-Z0-9._#:/-]{1,256}$", var.emf_namespace))
    error_message = "emf_namespace: 1 to 256 of A-Z a-z 0-9 . _ # : / -."
  }
}

variable "log_retention_days" {
  type        = number
  description = "Retention of the service's log group in days."
  default     = 30
  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1827, 3653], var.log_retention_days)
    error_message = "log_retention_days: a value CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, ...)."
  }
}

variable "shutdown_grace_seconds" {
  type        = number
  description = "Drain time after SIGTERM (TAINA_SHUTDOWN_GRACE); ECS waits 10 s longer before SIGKILL."
  default     = 20
  validation {
    condition     = var.shutdown_grace_seconds >= 1 && var.shutdown_grace_seconds <= 110
    error_message = "shutdown_grace_seconds: 1 to 110 (ECS stops a container after 120 s at most)."
  }
}

variable "tags" {
  type        = map(string)
  description = "Tags for every resource of the module."
  default     = {}
}
