# What belongs to your AWS account, not to an environment: copy, fill in, pass as a second -var-file.
# ARNs only; secret values stay in Secrets Manager.
region             = "eu-west-1"
vpc_id             = "vpc-0123456789abcdef0"
private_subnet_ids = ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1", "subnet-0123456789abcdef2"]
image_repository   = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/taina"
image_tag          = "v0.1.0"
qdrant_url         = "https://qdrant.internal.example:6333"

scram_secret_arns         = ["arn:aws:secretsmanager:eu-west-1:123456789012:secret:AmazonMSK_taina-services"]
kafka_username_secret_arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:AmazonMSK_taina-services:username::"
kafka_password_secret_arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:AmazonMSK_taina-services:password::"
api_keys_secret_arn       = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:taina-api-keys"
secret_arns = {
  TAINA_EMBED_API_KEY         = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:taina-embed-key"
  TAINA_LLM_API_KEY           = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:taina-llm-key"
  TAINA_QDRANT_API_KEY        = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:taina-qdrant-key"
  TAINA_DATABASE_URL          = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:taina-database-url"
  TAINA_BOOKING_CLIENT_SECRET = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:taina-booking-secret"
}
