output "name" {
  description = "Name of the ECS cluster."
  value       = aws_ecs_cluster.this.name
}

output "arn" {
  description = "ARN of the ECS cluster."
  value       = aws_ecs_cluster.this.arn
}

output "capacity_provider_strategy" {
  description = "Default capacity provider strategy of flow runs: objects with capacity_provider, weight and base (FARGATE_SPOT first)."
  value       = local.capacity_provider_strategy
}
