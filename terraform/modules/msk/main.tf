# Amazon MSK for Taina: TLS everywhere, SASL/SCRAM or IAM client auth, encryption at rest with
# KMS, broker logs in CloudWatch, topics created by the operator (auto-create off).

locals {
  client_port = var.auth_mode == "scram" ? 9096 : 9098
  kms_key_arn = var.kms_key_arn != null ? var.kms_key_arn : aws_kms_key.msk[0].arn
}

resource "aws_kms_key" "msk" {
  count                   = var.kms_key_arn == null ? 1 : 0
  description             = "MSK ${var.name}: encryption at rest"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  tags                    = var.tags
}

resource "aws_kms_alias" "msk" {
  count         = var.kms_key_arn == null ? 1 : 0
  name          = "alias/${var.name}-msk"
  target_key_id = aws_kms_key.msk[0].key_id
}

resource "aws_security_group" "msk" {
  name        = "${var.name}-msk"
  description = "MSK ${var.name}: brokers, reachable by the Taina services only"
  vpc_id      = var.vpc_id
  tags        = var.tags
}

resource "aws_vpc_security_group_ingress_rule" "clients" {
  for_each                     = var.client_security_groups
  security_group_id            = aws_security_group.msk.id
  referenced_security_group_id = each.value
  ip_protocol                  = "tcp"
  from_port                    = local.client_port
  to_port                      = local.client_port
  description                  = "Kafka clients: ${each.key} (${var.auth_mode} over TLS)"
}

resource "aws_cloudwatch_log_group" "broker" {
  name              = "/aws/msk/${var.name}"
  retention_in_days = var.log_retention_days
  tags              = var.tags
}

resource "aws_msk_configuration" "this" {
  name           = "${var.name}-config"
  kafka_versions = [var.kafka_version]
  server_properties = join("\n", [
    "auto.create.topics.enable=false",
    "default.replication.factor=3",
    "min.insync.replicas=2",
    "unclean.leader.election.enable=false",
    "transaction.state.log.replication.factor=3",
    "transaction.state.log.min.isr=2",
    "offsets.topic.replication.factor=3",
  ])
}

resource "aws_msk_cluster" "this" {
  cluster_name           = var.name
  kafka_version          = var.kafka_version
  number_of_broker_nodes = var.broker_count
  enhanced_monitoring    = var.enhanced_monitoring

  broker_node_group_info {
    instance_type   = var.broker_instance_type
    client_subnets  = var.subnet_ids
    security_groups = [aws_security_group.msk.id]
    storage_info {
      ebs_storage_info {
        volume_size = var.ebs_volume_size_gb
      }
    }
  }

  configuration_info {
    arn      = aws_msk_configuration.this.arn
    revision = aws_msk_configuration.this.latest_revision
  }

  client_authentication {
    unauthenticated = false
    sasl {
      scram = var.auth_mode == "scram"
      iam   = var.auth_mode == "iam"
    }
  }

  encryption_info {
    encryption_at_rest_kms_key_arn = local.kms_key_arn
    encryption_in_transit {
      client_broker = "TLS"
      in_cluster    = true
    }
  }

  logging_info {
    broker_logs {
      cloudwatch_logs {
        enabled   = true
        log_group = aws_cloudwatch_log_group.broker.name
      }
    }
  }

  open_monitoring {
    prometheus {
      jmx_exporter {
        enabled_in_broker = true
      }
      node_exporter {
        enabled_in_broker = true
      }
    }
  }

  tags = var.tags
}

resource "aws_msk_scram_secret_association" "this" {
  count           = var.auth_mode == "scram" && length(var.scram_secret_arns) > 0 ? 1 : 0
  cluster_arn     = aws_msk_cluster.this.arn
  secret_arn_list = var.scram_secret_arns
}
