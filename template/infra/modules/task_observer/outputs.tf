output "queue_name" {
  description = "Name of the task-event queue (the worker's PREFECT_INTEGRATIONS_AWS_ECS_OBSERVER_SQS_QUEUE_NAME)."
  value       = aws_sqs_queue.task_events.name
}

output "queue_arn" {
  description = "ARN of the task-event queue."
  value       = aws_sqs_queue.task_events.arn
}

output "dead_letter_queue_name" {
  description = "Name of the dead-letter queue of the task-event queue."
  value       = aws_sqs_queue.task_events_dead_letter.name
}
