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
