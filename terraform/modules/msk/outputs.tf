output "cluster_arn" {
  description = "ARN of the MSK cluster."
  value       = aws_msk_cluster.this.arn
}

output "cluster_name" {
  description = "Name of the MSK cluster."
  value       = aws_msk_cluster.this.cluster_name
}

output "bootstrap_brokers" {
  description = "Bootstrap servers for TAINA_KAFKA_BROKERS (SASL/SCRAM on 9096 or IAM on 9098, TLS)."
  value       = var.auth_mode == "scram" ? aws_msk_cluster.this.bootstrap_brokers_sasl_scram : aws_msk_cluster.this.bootstrap_brokers_sasl_iam
}

output "client_port" {
  description = "TCP port the clients use (9096 SCRAM, 9098 IAM)."
  value       = local.client_port
}

output "security_group_id" {
  description = "Security group of the brokers."
  value       = aws_security_group.msk.id
}

output "kms_key_arn" {
  description = "KMS key encrypting the brokers' storage."
  value       = local.kms_key_arn
}

output "broker_log_group" {
  description = "CloudWatch log group of the broker logs."
  value       = aws_cloudwatch_log_group.broker.name
}
