variable "name" {
  description = "Prefix of the Dask resources' names, \"<project>-<environment>\"."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,39}$", var.name))
    error_message = "name must be lower-case letters, digits and hyphens, at most 40 characters."
  }
}

variable "vpc_id" {
  description = "VPC of the flow runs, where the scheduler and workers run too."
  type        = string

  validation {
    condition     = can(regex("^vpc-[0-9a-f]+$", var.vpc_id))
    error_message = "vpc_id must be a VPC id (vpc-...)."
  }
}

variable "cluster_name" {
  description = "Name of the ECS cluster the scheduler and workers run in."
  type        = string

  validation {
    condition     = length(var.cluster_name) > 0
    error_message = "cluster_name must not be empty."
  }
}

variable "cluster_arn" {
  description = "ARN of that ECS cluster; RunTask, DescribeTasks and StopTask are limited to it."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:ecs:[a-z0-9-]+:[0-9]{12}:cluster/.+$", var.cluster_arn))
    error_message = "cluster_arn must be an ECS cluster ARN."
  }
}

variable "flow_run_security_group_id" {
  description = "Security group of the flow runs, the Dask clients."
  type        = string

  validation {
    condition     = can(regex("^sg-[0-9a-f]+$", var.flow_run_security_group_id))
    error_message = "flow_run_security_group_id must be a security group id (sg-...)."
  }
}

variable "flow_run_task_role_name" {
  description = "Name of the flow runs' task role, which gets the permissions to start and stop Dask clusters."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9+=,.@_-]{1,64}$", var.flow_run_task_role_name))
    error_message = "flow_run_task_role_name must be an IAM role name."
  }
}

variable "ecr_repository_arn" {
  description = "ARN of the ECR repository with the flow image, which the scheduler and workers run."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:ecr:", var.ecr_repository_arn))
    error_message = "ecr_repository_arn must be an ECR repository ARN."
  }
}

variable "log_retention_days" {
  description = "Retention of the Dask log group in days."
  type        = number

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a CloudWatch Logs retention value."
  }
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

  validation {
    condition     = var.scheduler_port < var.dashboard_port && var.dashboard_port < var.worker_port && var.worker_port < var.nanny_port
    error_message = "Dask ports must be scheduler < dashboard < worker < nanny (the security group admits one contiguous range)."
  }
}
