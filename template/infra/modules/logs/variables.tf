variable "name" {
  description = "Prefix of the log group names, \"<project>-<environment>\"."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,39}$", var.name))
    error_message = "name must be lower-case letters, digits and hyphens, at most 40 characters."
  }
}

variable "retention_days" {
  description = "Days CloudWatch keeps worker and flow-run logs."
  type        = number

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.retention_days)
    error_message = "retention_days must be a retention CloudWatch Logs accepts, e.g. 7, 30 or 365."
  }
}
