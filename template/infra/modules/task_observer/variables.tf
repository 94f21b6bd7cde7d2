variable "name" {
  description = "Prefix of the queue and rule names, \"<project>-<environment>\"."
  type        = string
}

variable "cluster_name" {
  description = "Name of the ECS cluster whose task events are forwarded."
  type        = string
}

variable "cluster_arn" {
  description = "ARN of the ECS cluster whose task events are forwarded."
  type        = string
}

variable "message_retention_seconds" {
  description = "How long an unread task event waits for the worker (e.g. while it restarts)."
  type        = number
  default     = 86400
}
