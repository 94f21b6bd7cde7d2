variable "name" {
  description = "Prefix of the topic name, \"<project>-<environment>\"."
  type        = string
}

variable "email" {
  description = "E-mail address subscribed to the topic; empty for none (validated by the stack)."
  type        = string
  default     = ""
}
