output "service_name" {
  description = "Name of the worker's ECS service."
  value       = aws_ecs_service.worker.name
}

output "task_definition_arn" {
  description = "Task definition revision the worker service runs."
  value       = aws_ecs_task_definition.worker.arn
}

output "security_group_id" {
  description = "Security group of the worker task."
  value       = aws_security_group.worker.id
}

output "log_group_name" {
  description = "CloudWatch log group of the worker."
  value       = aws_cloudwatch_log_group.worker.name
}

output "execution_role_arn" {
  description = "Execution role of the worker task (logs, secret)."
  value       = aws_iam_role.execution.arn
}

output "task_role_arn" {
  description = "Task role of the worker (launches and watches flow runs)."
  value       = aws_iam_role.task.arn
}

output "alarm_arn" {
  description = "ARN of the worker-not-running alarm."
  value       = aws_cloudwatch_metric_alarm.worker_not_running.arn
}
