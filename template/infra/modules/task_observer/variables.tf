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

variable "max_receive_count" {
  description = "Receives of one message without its deletion before it moves to the dead-letter queue (each holds it up to 300 s)."
  type        = number
  default     = 5
}

variable "backlog_alarm_threshold" {
  description = "Task events waiting in the queue above which the backlog alarm counts a minute as breaching (a working observer drains a burst of starts within a minute)."
  type        = number
  default     = 25
}

variable "backlog_alarm_minutes" {
  description = "Consecutive minutes above the threshold before the backlog alarm fires."
  type        = number
  default     = 15
}

variable "alarm_sns_topic_arn" {
  description = "SNS topic the queue alarms notify when they fire and clear."
  type        = string
}
