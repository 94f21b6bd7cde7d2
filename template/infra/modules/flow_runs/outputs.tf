output "family" {
  description = "Task-definition family of the flow runs (the worker registers one revision per deployment)."
  value       = local.family
}

output "security_group_id" {
  description = "Outbound-only security group of the flow-run tasks."
  value       = aws_security_group.flow_runs.id
}

output "log_group_name" {
  description = "Log group of the flow-run containers."
  value       = aws_cloudwatch_log_group.flow_runs.name
}

output "log_group_arn" {
  description = "ARN of that log group (without the trailing \":*\")."
  value       = aws_cloudwatch_log_group.flow_runs.arn
}

output "execution_role_arn" {
  description = "Execution role of the flow-run tasks."
  value       = aws_iam_role.execution.arn
}

output "task_role_arn" {
  description = "Task role of the flow runs: the permissions the flow code has."
  value       = aws_iam_role.task.arn
}

output "task_role_name" {
  description = "Name of the flow runs' task role, for policies other modules attach to it."
  value       = aws_iam_role.task.name
}
