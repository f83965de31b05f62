# Live: production size; workers scale up to their input topic's partitions. Use with the stack root:
#   terraform -chdir=terraform/stack init -backend-config=../environments/live.backend.hcl
#   terraform -chdir=terraform/stack plan -var-file=../environments/live.tfvars -var-file=<your account>.tfvars
env                  = "live"
log_level            = "info"
broker_instance_type = "kafka.m7g.large"
broker_volume_gb     = 500
log_retention_days   = 90
scaling = {
  ingest        = { min = 2, max = 6 }
  embedder      = { min = 2, max = 12 }
  rag           = { min = 2, max = 6 }
  voice-gateway = { min = 2, max = 6 }
  appointments  = { min = 1, max = 3 }
}
