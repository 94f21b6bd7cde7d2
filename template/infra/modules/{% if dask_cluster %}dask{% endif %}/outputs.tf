output "security_group_id" {
  description = "Security group of the Dask scheduler and workers."
  value       = aws_security_group.dask.id
}

output "log_group_name" {
  description = "Log group of the Dask scheduler and workers."
  value       = aws_cloudwatch_log_group.dask.name
}

output "execution_role_arn" {
  description = "Execution role of the Dask tasks (image pull, logs)."
  value       = aws_iam_role.execution.arn
  depends_on  = [aws_iam_role_policy.execution]
}

output "task_role_arn" {
  description = "Task role of the Dask scheduler and workers: what Dask tasks may call in AWS."
  value       = aws_iam_role.task.arn
}

output "name_prefix" {
  description = "Prefix of the Dask cluster names; the flow-run role may only run task definitions named after it."
  value       = local.name_prefix
  depends_on  = [aws_iam_role_policy.launch]
}

output "ports" {
  description = "Fixed Dask ports the security group admits."
  value = {
    scheduler = var.scheduler_port
    dashboard = var.dashboard_port
    worker    = var.worker_port
    nanny     = var.nanny_port
  }
}
