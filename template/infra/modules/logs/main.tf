# Log groups are encrypted at rest with the CloudWatch Logs service key. A
# customer managed KMS key would cost $1/month per key (plus per-request fees)
# in a stack whose idle cost must stay below $10/month.

resource "aws_cloudwatch_log_group" "worker" {
  #checkov:skip=CKV_AWS_158:Encrypted with the CloudWatch Logs service key; a customer managed KMS key adds $1/month to a stack budgeted below $10/month idle.
  #checkov:skip=CKV_AWS_338:Retention is the project's log_retention_days answer, a deliberate cost choice.
  name              = "/ecs/${var.name}/worker"
  retention_in_days = var.retention_days
}

resource "aws_cloudwatch_log_group" "flow_runs" {
  #checkov:skip=CKV_AWS_158:Encrypted with the CloudWatch Logs service key; a customer managed KMS key adds $1/month to a stack budgeted below $10/month idle.
  #checkov:skip=CKV_AWS_338:Retention is the project's log_retention_days answer, a deliberate cost choice.
  name              = "/ecs/${var.name}/flow-runs"
  retention_in_days = var.retention_days
}
