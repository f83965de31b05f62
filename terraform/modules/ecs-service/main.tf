# One Taina service on ECS Fargate: task definition, service, log group, least-privilege IAM
# roles, secrets from Secrets Manager, and target tracking on CPU and (for Kafka workers) on the
# ConsumerLagSum metric the service writes as CloudWatch EMF lines on stdout.

data "aws_region" "current" {}
data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  full_name = "${var.name_prefix}-${var.name}"
  env = merge(
    {
      TAINA_HTTP_PORT      = tostring(var.container_port)
      TAINA_HTTP_BIND      = "0.0.0.0"
      TAINA_SHUTDOWN_GRACE = "${var.shutdown_grace_seconds}s"
    },
    var.lag_scaling == null ? {} : {
      TAINA_METRICS_EMF           = "1"
      TAINA_METRICS_EMF_NAMESPACE = var.emf_namespace
    },
    var.api_keys_secret_arn == null ? {} : {
      TAINA_API_KEYS_FILE = "/run/taina/api_keys"
    },
    var.environment,
  )
  # Secrets Manager ARNs without a ":json-key::" suffix, for the execution role's policy.
  secret_arns = distinct([for v in concat(values(var.secrets), var.api_keys_secret_arn == null ? [] : [var.api_keys_secret_arn]) : join(":", slice(split(":", v), 0, 7))])
  # Fargate cannot mount a secret as a file: a short-lived container of the same image writes the
  # API keys file into a task volume, readable by the service's user only, and exits.
  api_keys_init = var.api_keys_secret_arn == null ? [] : [{
    name                   = "api-keys"
    image                  = var.image
    essential              = false
    user                   = "0"
    readonlyRootFilesystem = true
    entryPoint             = ["/bin/sh", "-c"]
    command                = ["umask 077 && printf '%s\\n' \"$TAINA_API_KEYS\" > /run/taina/api_keys && chown 10001:10001 /run/taina/api_keys"]
    secrets                = [{ name = "TAINA_API_KEYS", valueFrom = var.api_keys_secret_arn }]
    mountPoints            = [{ sourceVolume = "run-taina", containerPath = "/run/taina", readOnly = false }]
    # Fargate cannot add capabilities: drop every default one but CHOWN.
    linuxParameters = { capabilities = { drop = ["AUDIT_WRITE", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE", "NET_RAW", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"] } }
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.this.name
        awslogs-region        = data.aws_region.current.name
        awslogs-stream-prefix = "${var.name}-api-keys"
      }
    }
  }]
  msk_prefix = var.msk_iam == null ? "" : replace(var.msk_iam.cluster_arn, ":cluster/", ":%s/")
}

resource "aws_cloudwatch_log_group" "this" {
  name              = "/ecs/${local.full_name}"
  retention_in_days = var.log_retention_days
  tags              = var.tags
}

# ---------------------------------------------------------------------------------------------
# IAM: the execution role pulls the image, writes logs and reads this service's secrets only;
# the task role holds what the program itself calls (MSK IAM, when used), nothing else.

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

resource "aws_iam_role" "execution" {
  name               = "${local.full_name}-execution"
  assume_role_policy = data.aws_iam_policy_document.assume.json
  tags               = var.tags
}

data "aws_iam_policy_document" "execution" {
  statement {
    sid       = "PullImage"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"] # this action has no resource-level permissions
  }
  statement {
    sid       = "PullImageLayers"
    actions   = ["ecr:BatchCheckLayerAvailability", "ecr:GetDownloadUrlForLayer", "ecr:BatchGetImage"]
    resources = ["arn:${data.aws_partition.current.partition}:ecr:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}:repository/*"]
  }
  statement {
    sid       = "Logs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.this.arn}:*"]
  }
  dynamic "statement" {
    for_each = length(local.secret_arns) > 0 ? [1] : []
    content {
      sid       = "Secrets"
      actions   = ["secretsmanager:GetSecretValue"]
      resources = local.secret_arns
    }
  }
  dynamic "statement" {
    for_each = length(var.secrets_kms_key_arns) > 0 ? [1] : []
    content {
      sid       = "DecryptSecrets"
      actions   = ["kms:Decrypt"]
      resources = var.secrets_kms_key_arns
    }
  }
}

resource "aws_iam_role_policy" "execution" {
  name   = "execution"
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.execution.json
}

resource "aws_iam_role" "task" {
  name               = "${local.full_name}-task"
  assume_role_policy = data.aws_iam_policy_document.assume.json
  tags               = var.tags
}

data "aws_iam_policy_document" "msk" {
  count = var.msk_iam == null ? 0 : 1
  statement {
    sid       = "Connect"
    actions   = ["kafka-cluster:Connect", "kafka-cluster:DescribeCluster"]
    resources = [var.msk_iam.cluster_arn]
  }
  statement {
    sid       = "ReadTopics"
    actions   = ["kafka-cluster:DescribeTopic", "kafka-cluster:ReadData"]
    resources = [for t in var.msk_iam.topics_read : "${format(local.msk_prefix, "topic")}/${t}"]
  }
  statement {
    sid       = "WriteTopics"
    actions   = ["kafka-cluster:DescribeTopic", "kafka-cluster:WriteData"]
    resources = [for t in var.msk_iam.topics_write : "${format(local.msk_prefix, "topic")}/${t}"]
  }
  statement {
    sid       = "Groups"
    actions   = ["kafka-cluster:DescribeGroup", "kafka-cluster:AlterGroup"]
    resources = [for g in var.msk_iam.groups : "${format(local.msk_prefix, "group")}/${g}"]
  }
  statement {
    sid       = "Transactions"
    actions   = ["kafka-cluster:DescribeTransactionalId", "kafka-cluster:AlterTransactionalId", "kafka-cluster:WriteDataIdempotently"]
    resources = [var.msk_iam.cluster_arn, "${format(local.msk_prefix, "transactional-id")}/*"]
  }
}

resource "aws_iam_role_policy" "msk" {
  count  = var.msk_iam == null ? 0 : 1
  name   = "msk"
  role   = aws_iam_role.task.id
  policy = data.aws_iam_policy_document.msk[0].json
}

# ---------------------------------------------------------------------------------------------
# Task definition and service

resource "aws_ecs_task_definition" "this" {
  family                   = local.full_name
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.cpu
  memory                   = var.memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.task.arn
  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "X86_64"
  }
  container_definitions = jsonencode(concat(local.api_keys_init, [{
    name                   = var.name
    image                  = var.image
    essential              = true
    user                   = "10001:10001"
    readonlyRootFilesystem = true
    portMappings           = [{ containerPort = var.container_port, protocol = "tcp" }]
    environment            = [for k in sort(keys(local.env)) : { name = k, value = local.env[k] }]
    secrets                = [for k in sort(keys(var.secrets)) : { name = k, valueFrom = var.secrets[k] }]
    stopTimeout            = var.shutdown_grace_seconds + 10
    linuxParameters        = { initProcessEnabled = true, capabilities = { drop = ["ALL"] } }
    mountPoints = concat(
      [{ sourceVolume = "tmp", containerPath = "/tmp", readOnly = false }],
      var.api_keys_secret_arn == null ? [] : [{ sourceVolume = "run-taina", containerPath = "/run/taina", readOnly = true }],
    )
    dependsOn = var.api_keys_secret_arn == null ? [] : [{ containerName = "api-keys", condition = "SUCCESS" }]
    healthCheck = {
      command     = ["CMD-SHELL", "curl -fsS http://127.0.0.1:${var.container_port}/health >/dev/null || exit 1"]
      interval    = 10
      timeout     = 3
      retries     = 3
      startPeriod = 20
    }
    # stdout carries the EMF lines, stderr the JSON logs: both to the log group, where
    # CloudWatch extracts ConsumerLagSum from the EMF documents.
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.this.name
        awslogs-region        = data.aws_region.current.name
        awslogs-stream-prefix = var.name
        mode                  = "non-blocking"
      }
    }
  }]))
  volume {
    name = "tmp"
  }
  volume {
    name = "run-taina"
  }
  tags = var.tags
}

resource "aws_security_group" "this" {
  name        = local.full_name
  description = "Taina ${var.name}: its HTTP port from the allowed groups; egress for Kafka and upstreams"
  vpc_id      = var.vpc_id
  tags        = var.tags
}

resource "aws_vpc_security_group_ingress_rule" "http" {
  for_each                     = toset(var.ingress_security_group_ids)
  security_group_id            = aws_security_group.this.id
  referenced_security_group_id = each.value
  ip_protocol                  = "tcp"
  from_port                    = var.container_port
  to_port                      = var.container_port
  description                  = "HTTP API, health and metrics"
}

resource "aws_vpc_security_group_egress_rule" "all" {
  security_group_id = aws_security_group.this.id
  ip_protocol       = "-1"
  cidr_ipv4         = "0.0.0.0/0"
  description       = "Kafka, Qdrant, providers' APIs, Secrets Manager, ECR"
}

resource "aws_ecs_service" "this" {
  name                   = var.name
  cluster                = var.cluster_arn
  task_definition        = aws_ecs_task_definition.this.arn
  desired_count          = var.desired_count
  launch_type            = "FARGATE"
  enable_execute_command = false
  propagate_tags         = "SERVICE"
  wait_for_steady_state  = false

  network_configuration {
    subnets          = var.subnet_ids
    security_groups  = [aws_security_group.this.id]
    assign_public_ip = false
  }

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }
  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200

  dynamic "load_balancer" {
    for_each = var.target_group_arn == null ? [] : [var.target_group_arn]
    content {
      target_group_arn = load_balancer.value
      container_name   = var.name
      container_port   = var.container_port
    }
  }

  lifecycle {
    ignore_changes = [desired_count] # owned by autoscaling
  }
  tags = var.tags
}

# ---------------------------------------------------------------------------------------------
# Autoscaling: CPU, and the average per task of the group's ConsumerLagSum (each task reports
# the lag of the partitions it holds: more tasks, fewer records each).

resource "aws_appautoscaling_target" "this" {
  service_namespace  = "ecs"
  resource_id        = "service/${var.cluster_name}/${aws_ecs_service.this.name}"
  scalable_dimension = "ecs:service:DesiredCount"
  min_capacity       = var.min_capacity
  max_capacity       = var.max_capacity
}

resource "aws_appautoscaling_policy" "cpu" {
  name               = "${local.full_name}-cpu"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.this.service_namespace
  resource_id        = aws_appautoscaling_target.this.resource_id
  scalable_dimension = aws_appautoscaling_target.this.scalable_dimension
  target_tracking_scaling_policy_configuration {
    target_value       = var.cpu_target_percent
    scale_in_cooldown  = 300
    scale_out_cooldown = 60
    predefined_metric_specification {
      predefined_metric_type = "ECSServiceAverageCPUUtilization"
    }
  }
}

resource "aws_appautoscaling_policy" "lag" {
  count              = var.lag_scaling == null ? 0 : 1
  name               = "${local.full_name}-consumer-lag"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.this.service_namespace
  resource_id        = aws_appautoscaling_target.this.resource_id
  scalable_dimension = aws_appautoscaling_target.this.scalable_dimension
  target_tracking_scaling_policy_configuration {
    target_value       = var.lag_scaling.target_per_task
    scale_in_cooldown  = 300
    scale_out_cooldown = 60
    customized_metric_specification {
      namespace   = var.emf_namespace
      metric_name = "ConsumerLagSum"
      statistic   = "Average"
      unit        = "Count"
      dimensions {
        name  = "Service"
        value = var.name
      }
      dimensions {
        name  = "ConsumerGroup"
        value = var.lag_scaling.consumer_group
      }
    }
  }
}
