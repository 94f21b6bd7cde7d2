variable "name" {
  description = "Prefix of the secret name, \"<project>-<environment>\"."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,39}$", var.name))
    error_message = "name must be lower-case letters, digits and hyphens, at most 40 characters."
  }
}

variable "recovery_window_days" {
  description = "Days a deleted secret can be restored; 0 deletes at once (lets `terraform destroy` + apply reuse the name)."
  type        = number
  default     = 7

  validation {
    condition     = var.recovery_window_days == 0 || (var.recovery_window_days >= 7 && var.recovery_window_days <= 30)
    error_message = "recovery_window_days must be 0 or from 7 to 30."
  }
}
