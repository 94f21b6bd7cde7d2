output "arn" {
  description = "ARN of the Prefect credential secret."
  value       = aws_secretsmanager_secret.prefect.arn
}

output "name" {
  description = "Name of the Prefect credential secret (for `aws secretsmanager put-secret-value`)."
  value       = aws_secretsmanager_secret.prefect.name
}
