variable "name" {
  description = "Name of the ECS cluster, \"<project>-<environment>\"."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,39}$", var.name))
    error_message = "name must be lower-case letters, digits and hyphens, at most 40 characters."
  }
}

variable "container_insights" {
  description = "Enable CloudWatch Container Insights (per-task metrics, billed as custom metrics)."
  type        = bool
  default     = false
}

variable "spot_weight" {
  description = "Relative share of flow runs placed on FARGATE_SPOT."
  type        = number

  validation {
    condition     = var.spot_weight >= 0 && var.spot_weight <= 1000 && floor(var.spot_weight) == var.spot_weight
    error_message = "spot_weight must be a whole number from 0 to 1000."
  }
}

variable "on_demand_weight" {
  description = "Relative share of flow runs placed on on-demand FARGATE."
  type        = number

  validation {
    condition     = var.on_demand_weight >= 0 && var.on_demand_weight <= 1000 && floor(var.on_demand_weight) == var.on_demand_weight
    error_message = "on_demand_weight must be a whole number from 0 to 1000."
  }

  validation {
    condition     = var.spot_weight + var.on_demand_weight > 0
    error_message = "spot_weight and on_demand_weight cannot both be 0: ECS needs one provider with a positive weight."
  }
}

variable "on_demand_base" {
  description = "Flow runs that go to on-demand FARGATE before the weights apply (per RunTask call: the worker launches each flow run with its own call, so >= 1 puts every run on FARGATE)."
  type        = number
  default     = 0

  validation {
    condition     = var.on_demand_base >= 0 && var.on_demand_base <= 100000 && floor(var.on_demand_base) == var.on_demand_base
    error_message = "on_demand_base must be a whole number from 0 to 100000."
  }
}
