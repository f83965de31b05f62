# Taina on AWS: MSK (SASL/SCRAM over TLS) and the five services on ECS Fargate. Workers scale on
# CPU and on ConsumerLagSum (EMF), never beyond their input topic's partitions. One root for every
# environment: an environment is a var file (../environments/<env>.tfvars: sizes, log level,
# retention) plus a state key (../environments/<env>.backend.hcl), so sandbox and live cannot drift.

terraform {
  required_version = ">= 1.5.0"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.60.0, < 7.0.0"
    }
  }
  # State in S3 with locking; bucket, key and table come from `terraform init -backend-config=...`
  # (one key per environment: ../environments/<env>.backend.hcl).
  backend "s3" {}
}

provider "aws" {
  region = var.region
  default_tags {
    tags = local.tags
  }
}

locals {
  env  = var.env
  tags = { project = "taina", environment = local.env }
  kafka_secrets = {
    TAINA_KAFKA_SASL_USERNAME = var.kafka_username_secret_arn
    TAINA_KAFKA_SASL_PASSWORD = var.kafka_password_secret_arn
  }
  kafka_env = {
    TAINA_KAFKA_BROKERS           = module.msk.bootstrap_brokers
    TAINA_KAFKA_SECURITY_PROTOCOL = "SASL_SSL"
    TAINA_KAFKA_SASL_MECHANISM    = "SCRAM-SHA-512"
    TAINA_LOG_LEVEL               = var.log_level
  }
  # Per service: port, size, scaling range and the secrets it reads. max <= partitions of the
  # input topic (schemas/topics.json): tickets.raw 6, tickets.enriched 12.
  services = {
    ingest = {
      port    = 8080, cpu = 512, memory = 1024, min = var.scaling["ingest"].min, max = var.scaling["ingest"].max
      lag     = { consumer_group = "taina-ingest", target_per_task = 500 }
      env     = { TAINA_API_KEYS_FILE = "/run/taina/api_keys" }
      secrets = []
    }
    embedder = {
      port = 8081, cpu = 1024, memory = 2048, min = var.scaling["embedder"].min, max = var.scaling["embedder"].max
      lag  = { consumer_group = "taina-embedder", target_per_task = 200 }
      env = {
        TAINA_VECTOR_STORE      = "qdrant"
        TAINA_QDRANT_URL        = var.qdrant_url
        TAINA_QDRANT_COLLECTION = "taina-chunks"
        TAINA_EMBED_PROVIDER    = "openai"
      }
      secrets = ["TAINA_QDRANT_API_KEY", "TAINA_EMBED_API_KEY"]
    }
    rag = {
      port = 8082, cpu = 1024, memory = 2048, min = var.scaling["rag"].min, max = var.scaling["rag"].max
      lag  = null
      env = {
        TAINA_RAG_BACKEND       = "qdrant"
        TAINA_QDRANT_URL        = var.qdrant_url
        TAINA_QDRANT_COLLECTION = "taina-chunks"
        TAINA_EMBED_PROVIDER    = "openai"
        TAINA_LLM_PROVIDER      = "openai"
      }
      secrets = ["TAINA_QDRANT_API_KEY", "TAINA_EMBED_API_KEY", "TAINA_LLM_API_KEY"]
    }
    voice-gateway = {
      port    = 8083, cpu = 1024, memory = 2048, min = var.scaling["voice-gateway"].min, max = var.scaling["voice-gateway"].max
      lag     = null
      env     = {}
      secrets = []
    }
    appointments = {
      port    = 8084, cpu = 256, memory = 512, min = var.scaling["appointments"].min, max = var.scaling["appointments"].max
      lag     = { consumer_group = "taina-appointments", target_per_task = 50 }
      env     = {}
      secrets = ["TAINA_DATABASE_URL", "TAINA_BOOKING_CLIENT_SECRET"]
    }
  }
}

resource "aws_ecs_cluster" "this" {
  name = "taina-${local.env}"
  setting {
    name  = "containerInsights"
    value = "enabled"
  }
}

module "msk" {
  source                 = "../modules/msk"
  name                   = "taina-${local.env}"
  broker_instance_type   = var.broker_instance_type
  broker_count           = var.broker_count
  ebs_volume_size_gb     = var.broker_volume_gb
  vpc_id                 = var.vpc_id
  subnet_ids             = var.private_subnet_ids
  client_security_groups = { for k, s in module.service : k => s.security_group_id }
  auth_mode              = "scram"
  scram_secret_arns      = var.scram_secret_arns
  log_retention_days     = var.log_retention_days
  tags                   = local.tags
}

module "service" {
  source   = "../modules/ecs-service"
  for_each = local.services

  name                       = each.key
  name_prefix                = "taina-${local.env}"
  image                      = "${var.image_repository}/${each.key}:${var.image_tag}"
  container_port             = each.value.port
  cpu                        = each.value.cpu
  memory                     = each.value.memory
  cluster_arn                = aws_ecs_cluster.this.arn
  cluster_name               = aws_ecs_cluster.this.name
  vpc_id                     = var.vpc_id
  subnet_ids                 = var.private_subnet_ids
  ingress_security_group_ids = var.ingress_security_group_ids
  target_group_arn           = lookup(var.api_target_group_arns, each.key, null)
  environment                = merge(local.kafka_env, each.value.env)
  secrets                    = merge(local.kafka_secrets, { for k in each.value.secrets : k => var.secret_arns[k] if contains(keys(var.secret_arns), k) })
  api_keys_secret_arn        = contains(["ingest", "rag", "voice-gateway"], each.key) ? var.api_keys_secret_arn : null
  secrets_kms_key_arns       = var.secrets_kms_key_arns
  desired_count              = each.value.min
  min_capacity               = each.value.min
  max_capacity               = each.value.max
  lag_scaling                = each.value.lag
  log_retention_days         = var.log_retention_days
  tags                       = local.tags
}
