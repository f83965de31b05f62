output "kafka_bootstrap_brokers" {
  description = "MSK bootstrap servers (SASL/SCRAM over TLS)."
  value       = module.msk.bootstrap_brokers
}

output "ecs_cluster_name" {
  description = "ECS cluster of the services."
  value       = aws_ecs_cluster.this.name
}

output "services" {
  description = "Per service: ECS service name, log group and task role."
  value = { for k, s in module.service : k => {
    service_name  = s.service_name
    log_group     = s.log_group_name
    task_role_arn = s.task_role_arn
  } }
}
