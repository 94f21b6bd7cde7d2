variable "name" {
  description = "Prefix of the worker's resource names, \"<project>-<environment>\"."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,39}$", var.name))
    error_message = "name must be lower-case letters, digits and hyphens, at most 40 characters."
  }
}

variable "aws_region" {
  description = "Region of the cluster, the queue and the log group."
  type        = string

  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]$", var.aws_region))
    error_message = "aws_region must be a region name such as us-east-1."
  }
}

variable "cluster_arn" {
  description = "ARN of the ECS cluster that runs the worker service."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:ecs:[a-z0-9-]+:[0-9]{12}:cluster/.+$", var.cluster_arn))
    error_message = "cluster_arn must be an ECS cluster ARN."
  }
}

variable "work_pool_name" {
  description = "Prefect work pool the worker polls."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9_.-]*$", var.work_pool_name))
    error_message = "work_pool_name must be letters, digits, '_', '.' or '-'."
  }
}

variable "image" {
  description = "Worker image with prefect-aws, pinned to a version tag."
  type        = string

  validation {
    condition     = can(regex(":[A-Za-z0-9_.-]+$", var.image)) && !endswith(var.image, ":latest")
    error_message = "image must carry an explicit version tag (not :latest)."
  }
}

variable "cpu" {
  description = "CPU units of the worker task."
  type        = number

  validation {
    condition     = contains([256, 512, 1024, 2048, 4096], var.cpu)
    error_message = "cpu must be one of 256, 512, 1024, 2048, 4096."
  }
}

variable "memory" {
  description = "Memory (MiB) of the worker task; must be valid for its cpu on Fargate."
  type        = number

  validation {
    condition = (
      var.cpu == 256 ? contains([512, 1024, 2048], var.memory) :
      var.cpu == 512 ? var.memory >= 1024 && var.memory <= 4096 && var.memory % 1024 == 0 :
      var.cpu == 1024 ? var.memory >= 2048 && var.memory <= 8192 && var.memory % 1024 == 0 :
      var.cpu == 2048 ? var.memory >= 4096 && var.memory <= 16384 && var.memory % 1024 == 0 :
      var.memory >= 8192 && var.memory <= 30720 && var.memory % 1024 == 0
    )
    error_message = "memory is not a Fargate size for this cpu (256: 512/1024/2048; 512: 1024-4096; 1024: 2048-8192; 2048: 4096-16384; 4096: 8192-30720, in 1024 steps)."
  }
}

variable "cpu_architecture" {
  description = "CPU architecture of the worker task; ARM64 (Graviton) Fargate costs about 20% less and the prefect-aws image is multi-arch."
  type        = string
  default     = "ARM64"

  validation {
    condition     = contains(["ARM64", "X86_64"], var.cpu_architecture)
    error_message = "cpu_architecture must be ARM64 or X86_64."
  }
}

variable "prefect_api_url" {
  description = "Prefect API URL the worker talks to."
  type        = string

  validation {
    condition     = startswith(var.prefect_api_url, "https://")
    error_message = "prefect_api_url must start with https://."
  }
}

variable "secret_arn" {
  description = "ARN of the Secrets Manager secret with the Prefect credential."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:secretsmanager:", var.secret_arn))
    error_message = "secret_arn must be a Secrets Manager ARN."
  }
}

variable "observer_queue_name" {
  description = "SQS queue with ECS task events, read by the worker's task observer."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,80}$", var.observer_queue_name))
    error_message = "observer_queue_name must be a valid SQS queue name."
  }
}

variable "log_group_name" {
  description = "CloudWatch log group of the worker."
  type        = string

  validation {
    condition     = length(var.log_group_name) > 0
    error_message = "log_group_name must not be empty."
  }
}

variable "execution_role_arn" {
  description = "Execution role of the worker task (logs, secret)."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:role/", var.execution_role_arn))
    error_message = "execution_role_arn must be an IAM role ARN."
  }
}

variable "task_role_arn" {
  description = "Task role of the worker (runs and watches flow-run tasks)."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:role/", var.task_role_arn))
    error_message = "task_role_arn must be an IAM role ARN."
  }
}

variable "vpc_id" {
  description = "VPC of the worker's security group."
  type        = string

  validation {
    condition     = can(regex("^vpc-[0-9a-f]+$", var.vpc_id))
    error_message = "vpc_id must look like vpc-0123456789abcdef0."
  }
}

variable "subnet_ids" {
  description = "Subnets the worker task may be placed in."
  type        = list(string)

  validation {
    condition     = length(var.subnet_ids) > 0
    error_message = "subnet_ids must not be empty."
  }
}

variable "assign_public_ip" {
  description = "Give the worker task a public IP (needed in public subnets without NAT)."
  type        = bool
}

variable "egress_rules" {
  description = "Outbound rules of the worker's security group, keyed by a stable name; the default opens TCP 443 anywhere (Prefect API, image registry, AWS APIs)."
  type = map(object({
    ip_protocol                  = string
    from_port                    = number
    to_port                      = number
    cidr_ipv4                    = optional(string)
    cidr_ipv6                    = optional(string)
    prefix_list_id               = optional(string)
    referenced_security_group_id = optional(string)
    description                  = string
  }))
  default = {
    "tcp-443-0.0.0.0/0" = { ip_protocol = "tcp", from_port = 443, to_port = 443, cidr_ipv4 = "0.0.0.0/0", description = "HTTPS to the Prefect API, ECR, Docker Hub and AWS APIs" }
  }

  validation {
    condition     = length(var.egress_rules) > 0
    error_message = "egress_rules must hold at least one rule: the worker must reach the Prefect API and AWS."
  }
}
