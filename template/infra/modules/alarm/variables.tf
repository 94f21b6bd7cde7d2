variable "cluster_name" {
  description = "Name of the ECS cluster that runs the worker service."
  type        = string

  validation {
    condition     = length(var.cluster_name) > 0
    error_message = "cluster_name must not be empty."
  }
}

variable "service_name" {
  description = "Name of the worker's ECS service."
  type        = string

  validation {
    condition     = length(var.service_name) > 0
    error_message = "service_name must not be empty."
  }
}

variable "evaluation_minutes" {
  description = "Minutes without a running worker task before the alarm fires (deployments replace the task within a few minutes)."
  type        = number
  default     = 10

  validation {
    condition     = var.evaluation_minutes >= 2 && var.evaluation_minutes <= 1440 && floor(var.evaluation_minutes) == var.evaluation_minutes
    error_message = "evaluation_minutes must be a whole number from 2 to 1440."
  }
}

variable "sns_topic_arn" {
  description = "SNS topic notified when the alarm fires and clears; empty for no notification."
  type        = string
  default     = ""

  validation {
    condition     = var.sns_topic_arn == "" || can(regex("^arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]+(\\.fifo)?$", var.sns_topic_arn))
    error_message = "sns_topic_arn must be empty or an SNS topic ARN."
  }
}
