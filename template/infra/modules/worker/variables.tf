# Internal inputs: the stack computes every one of them from its own validated
# variables (infra/stack/variables.tf), so they are not checked again here.

variable "name" {
  description = "Prefix of the worker's resource names, \"<project>-<environment>\"."
  type        = string
}

variable "aws_region" {
  description = "Region of the cluster, the queue and the log group."
  type        = string
}

variable "cluster_name" {
  description = "Name of the ECS cluster that runs the worker service and its flow runs."
  type        = string
}

variable "cluster_arn" {
  description = "ARN of that ECS cluster; RunTask, DescribeTasks and StopTask are limited to it."
  type        = string
}

variable "work_pool_name" {
  description = "Prefect work pool the worker polls."
  type        = string
}

variable "image" {
  description = "Worker image with prefect-aws, pinned to a version tag."
  type        = string
}

variable "cpu" {
  description = "CPU units of the worker task."
  type        = number
}

variable "memory" {
  description = "Memory (MiB) of the worker task, a Fargate size for its cpu."
  type        = number
}

variable "cpu_architecture" {
  description = "CPU architecture of the worker task; ARM64 (Graviton) Fargate costs about 20% less and the prefect-aws image is multi-arch."
  type        = string
  default     = "ARM64"
}

variable "prefect_api_url" {
  description = "Prefect API URL the worker talks to."
  type        = string
}

variable "secret_arn" {
  description = "ARN of the Secrets Manager secret with the Prefect credential."
  type        = string
}

variable "observer_queue_name" {
  description = "SQS queue with ECS task events, read by the worker's task observer."
  type        = string
}

variable "observer_queue_arn" {
  description = "ARN of that queue."
  type        = string
}

variable "flow_runs" {
  description = "What the worker launches: the flow runs' task-definition family (the worker may only run families starting with it), the two roles it passes to them and their log group (without the trailing \":*\")."
  type = object({
    family             = string
    execution_role_arn = string
    task_role_arn      = string
    log_group_arn      = string
  })
}

variable "log_retention_days" {
  description = "Days CloudWatch keeps the worker's log."
  type        = number
}

variable "vpc_id" {
  description = "VPC of the worker's security group."
  type        = string
}

variable "subnet_ids" {
  description = "Subnets the worker task may be placed in."
  type        = list(string)
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
}

variable "stuck_pending_minutes" {
  description = "Minutes a flow run of the pool may stay Pending before the worker marks it Crashed: the worker that submitted it died before its task started (Prefect #20485)."
  type        = number
}

variable "alarm_evaluation_minutes" {
  description = "Minutes without a running worker task before the worker-not-running alarm fires (deployments replace the task within a few minutes)."
  type        = number
  default     = 10
}

variable "alarm_sns_topic_arn" {
  description = "SNS topic notified when the alarm fires and clears; empty for no notification."
  type        = string
  default     = ""
}
