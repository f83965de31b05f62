# State of the live environment: fill in the bucket and lock table of your account.
bucket         = "REPLACE-with-your-state-bucket"
key            = "taina/live/terraform.tfstate"
region         = "eu-west-1"
dynamodb_table = "REPLACE-with-your-lock-table"
encrypt        = true
