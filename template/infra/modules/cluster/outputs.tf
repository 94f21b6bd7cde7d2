# Services and tasks name FARGATE / FARGATE_SPOT, which only works once the
# providers are attached: consumers of the cluster wait for that.
output "name" {
  description = "Name of the ECS cluster."
  value       = aws_ecs_cluster.this.name
  depends_on  = [aws_ecs_cluster_capacity_providers.this]
}

output "arn" {
  description = "ARN of the ECS cluster."
  value       = aws_ecs_cluster.this.arn
  depends_on  = [aws_ecs_cluster_capacity_providers.this]
}

output "capacity_provider_strategy" {
  description = "Default capacity provider strategy of flow runs: objects with capacity_provider, weight and base (FARGATE_SPOT first)."
  value       = local.capacity_provider_strategy
}
