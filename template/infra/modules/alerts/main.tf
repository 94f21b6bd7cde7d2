# The environment's alarm topic: every CloudWatch alarm of the stack notifies
# it when it fires and when it clears. People, chat or paging tools subscribe
# to it; the optional e-mail subscription is the one Terraform manages.

resource "aws_sns_topic" "alarms" {
  #checkov:skip=CKV_AWS_26:CloudWatch alarms cannot publish to a topic encrypted with the AWS managed key aws/sns (its key policy cannot grant cloudwatch.amazonaws.com), so encryption would need a customer managed key at $1/month per environment; the messages carry only alarm names, states and metric values.
  name         = "${var.name}-alarms"
  display_name = "${var.name} alarms"
}

# An e-mail subscription stays "pending confirmation" until its owner clicks
# the link AWS sends; Terraform cannot confirm it.
resource "aws_sns_topic_subscription" "email" {
  count = var.email == "" ? 0 : 1

  topic_arn = aws_sns_topic.alarms.arn
  protocol  = "email"
  endpoint  = var.email
}
