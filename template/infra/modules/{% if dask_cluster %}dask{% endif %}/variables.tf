variable "name" {
  description = "Prefix of the Dask resources' names, \"<project>-<environment>\"."
  type        = string
}

variable "vpc_id" {
  description = "VPC of the flow runs, where the scheduler and workers run too."
  type        = string
}

variable "cluster_name" {
  description = "Name of the ECS cluster the scheduler and workers run in."
  type        = string
}

variable "cluster_arn" {
  description = "ARN of that ECS cluster; RunTask, DescribeTasks and StopTask are limited to it."
  type        = string
}

variable "flow_run_security_group_id" {
  description = "Security group of the flow runs, the Dask clients."
  type        = string
}

variable "flow_run_task_role_name" {
  description = "Name of the flow runs' task role, which gets the permissions to start and stop Dask clusters."
  type        = string
}

variable "ecr_repository_arn" {
  description = "ARN of the ECR repository with the flow image, which the scheduler and workers run."
  type        = string
}

variable "log_retention_days" {
  description = "Retention of the Dask log group in days."
  type        = number
}

variable "scheduler_port" {
  description = "Port of the Dask scheduler (dask's default); the dashboard is the next one."
  type        = number
  default     = 8786
}

variable "dashboard_port" {
  description = "Port of the scheduler's dashboard."
  type        = number
  default     = 8787
}

variable "worker_port" {
  description = "Fixed port of each Dask worker (dask picks a random one unless told)."
  type        = number
  default     = 8788
}

variable "nanny_port" {
  description = "Fixed port of each worker's nanny process."
  type        = number
  default     = 8789

  # Not a re-check of an answer: the ports are this module's own defaults, and
  # its security group rules admit one contiguous range.
  validation {
    condition     = var.scheduler_port < var.dashboard_port && var.dashboard_port < var.worker_port && var.worker_port < var.nanny_port
    error_message = "Dask ports must be scheduler < dashboard < worker < nanny (the security group admits one contiguous range)."
  }
}
