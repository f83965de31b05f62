# Sandbox: the live layout, smaller and chattier. Use with the stack root:
#   terraform -chdir=terraform/stack init -backend-config=../environments/sandbox.backend.hcl
#   terraform -chdir=terraform/stack plan -var-file=../environments/sandbox.tfvars -var-file=<your account>.tfvars
env                  = "sandbox"
log_level            = "debug"
broker_instance_type = "kafka.t3.small"
broker_volume_gb     = 50
log_retention_days   = 14
scaling = {
  ingest        = { min = 1, max = 3 }
  embedder      = { min = 1, max = 3 }
  rag           = { min = 1, max = 3 }
  voice-gateway = { min = 1, max = 3 }
  appointments  = { min = 1, max = 3 }
}
