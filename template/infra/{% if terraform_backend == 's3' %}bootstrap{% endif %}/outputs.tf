output "state_bucket" {
  description = "Name of the state bucket: `terraform init -backend-config=\"bucket=<this>\"` in each env root."
  value       = aws_s3_bucket.state.bucket
}
