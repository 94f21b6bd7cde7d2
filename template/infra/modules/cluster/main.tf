resource "aws_ecs_cluster" "this" {
  #checkov:skip=CKV_AWS_65:Container Insights is the container_insights variable (off by default): its per-task metrics are billed, and the worker alarm uses AWS/ECS service metrics that need no Insights.
  name = var.name

  setting {
    name  = "containerInsights"
    value = var.container_insights ? "enabled" : "disabled"
  }
}

locals {
  # Providers with weight 0 and no base are left out: ECS never places a task
  # on them. A base counts per RunTask call, and the worker makes one call per
  # flow run, so an on-demand base >= 1 sends every flow run to FARGATE.
  capacity_provider_strategy = [
    for provider in [
      { capacity_provider = "FARGATE_SPOT", weight = var.spot_weight, base = 0 },
      { capacity_provider = "FARGATE", weight = var.on_demand_weight, base = var.on_demand_base },
    ] : provider if provider.weight > 0 || provider.base > 0
  ]
}

resource "aws_ecs_cluster_capacity_providers" "this" {
  cluster_name       = aws_ecs_cluster.this.name
  capacity_providers = ["FARGATE", "FARGATE_SPOT"]

  dynamic "default_capacity_provider_strategy" {
    for_each = local.capacity_provider_strategy

    content {
      capacity_provider = default_capacity_provider_strategy.value.capacity_provider
      weight            = default_capacity_provider_strategy.value.weight
      base              = default_capacity_provider_strategy.value.base
    }
  }
}
