output "deploy_role_arn" {
  description = "Role the deploy workflow assumes: set it as the GitHub environment variable AWS_DEPLOY_ROLE_ARN."
  value       = aws_iam_role.deploy.arn
}

output "oidc_provider_arn" {
  description = "The account's GitHub OIDC provider (created here or pre-existing)."
  value       = local.oidc_provider_arn
}

output "work_pool_parameter_name" {
  description = "SSM parameter with the work pool's defaults, read by the deploy workflow."
  value       = aws_ssm_parameter.work_pool_job_variables.name
}
