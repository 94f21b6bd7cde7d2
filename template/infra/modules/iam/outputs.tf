# The worker roles are handed out only with their policies attached, so the
# worker task never starts with a role that cannot yet read the secret.
output "worker_execution_role_arn" {
  description = "Execution role of the worker task."
  value       = aws_iam_role.worker_execution.arn
  depends_on  = [aws_iam_role_policy.worker_execution]
}

output "worker_task_role_arn" {
  description = "Task role of the worker (launches and watches flow runs)."
  value       = aws_iam_role.worker_task.arn
  depends_on  = [aws_iam_role_policy.worker_task]
}

output "flow_run_execution_role_arn" {
  description = "Execution role of the flow-run tasks."
  value       = aws_iam_role.flow_run_execution.arn
}

output "flow_run_task_role_arn" {
  description = "Task role of the flow runs: the permissions the flow code has."
  value       = aws_iam_role.flow_run_task.arn
}

output "flow_run_task_role_name" {
  description = "Name of the flow runs' task role, for policies other modules attach to it."
  value       = aws_iam_role.flow_run_task.name
}
