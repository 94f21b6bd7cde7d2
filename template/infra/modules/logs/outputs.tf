output "worker_log_group_name" {
  description = "Log group of the Prefect worker."
  value       = aws_cloudwatch_log_group.worker.name
}

output "worker_log_group_arn" {
  description = "ARN of the worker log group."
  value       = aws_cloudwatch_log_group.worker.arn
}

output "flow_run_log_group_name" {
  description = "Log group of the flow-run containers."
  value       = aws_cloudwatch_log_group.flow_runs.name
}

output "flow_run_log_group_arn" {
  description = "ARN of the flow-run log group."
  value       = aws_cloudwatch_log_group.flow_runs.arn
}
