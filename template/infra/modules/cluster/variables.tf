variable "name" {
  description = "Name of the ECS cluster, \"<project>-<environment>\"."
  type        = string
}

variable "container_insights" {
  description = "Enable CloudWatch Container Insights (per-task metrics, billed as custom metrics)."
  type        = bool
  default     = false
}

variable "spot_weight" {
  description = "Relative share of flow runs placed on FARGATE_SPOT."
  type        = number
}

variable "on_demand_weight" {
  description = "Relative share of flow runs placed on on-demand FARGATE."
  type        = number
}

variable "on_demand_base" {
  description = "Flow runs that go to on-demand FARGATE before the weights apply (per RunTask call: the worker launches each flow run with its own call, so >= 1 puts every run on FARGATE)."
  type        = number
  default     = 0
}
