output "alarm_arn" {
  description = "ARN of the worker-not-running alarm."
  value       = aws_cloudwatch_metric_alarm.worker_not_running.arn
}
