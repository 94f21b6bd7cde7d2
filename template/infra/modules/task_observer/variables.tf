variable "name" {
  description = "Prefix of the queue and rule names, \"<project>-<environment>\"."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,39}$", var.name))
    error_message = "name must be lower-case letters, digits and hyphens, at most 40 characters."
  }
}

variable "cluster_name" {
  description = "Name of the ECS cluster whose task events are forwarded."
  type        = string

  validation {
    condition     = length(var.cluster_name) > 0
    error_message = "cluster_name must not be empty."
  }
}

variable "cluster_arn" {
  description = "ARN of the ECS cluster whose task events are forwarded."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:ecs:[a-z0-9-]+:[0-9]{12}:cluster/.+$", var.cluster_arn))
    error_message = "cluster_arn must be an ECS cluster ARN."
  }
}

variable "message_retention_seconds" {
  description = "How long an unread task event waits for the worker (e.g. while it restarts)."
  type        = number
  default     = 86400

  validation {
    condition     = var.message_retention_seconds >= 60 && var.message_retention_seconds <= 1209600
    error_message = "message_retention_seconds must be from 60 to 1209600 (14 days)."
  }
}
