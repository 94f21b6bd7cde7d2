# The Prefect ECS worker's task observer reads ECS task state changes from this
# queue to mark crashed flow runs (e.g. a reclaimed Spot task) without polling ECS.

resource "aws_sqs_queue" "task_events" {
  name                    = "${var.name}-ecs-task-events"
  sqs_managed_sse_enabled = true

  # The observer holds a message for up to 300 s while it handles it.
  visibility_timeout_seconds = 300
  message_retention_seconds  = var.message_retention_seconds

  # A message the observer received this often without deleting it (it failed
  # on it each time) moves aside instead of coming back forever.
  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.task_events_dead_letter.arn
    maxReceiveCount     = var.max_receive_count
  })
}

resource "aws_sqs_queue" "task_events_dead_letter" {
  name                    = "${var.name}-ecs-task-events-dlq"
  sqs_managed_sse_enabled = true

  # SQS's maximum, 14 days: time to read why the observer failed on them.
  message_retention_seconds = 1209600
}

resource "aws_cloudwatch_event_rule" "task_state_change" {
  name        = "${var.name}-ecs-task-state-change"
  description = "ECS task state changes of cluster ${var.cluster_name}, for the Prefect worker's observer"

  event_pattern = jsonencode({
    source        = ["aws.ecs"]
    "detail-type" = ["ECS Task State Change"]
    detail        = { clusterArn = [var.cluster_arn] }
  })
}

resource "aws_cloudwatch_event_target" "task_events_queue" {
  rule = aws_cloudwatch_event_rule.task_state_change.name
  arn  = aws_sqs_queue.task_events.arn
}

data "aws_iam_policy_document" "task_events_from_rule" {
  statement {
    sid       = "EventBridgeRuleOnly"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.task_events.arn]

    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com"]
    }

    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [aws_cloudwatch_event_rule.task_state_change.arn]
    }
  }
}

resource "aws_sqs_queue_policy" "task_events" {
  queue_url = aws_sqs_queue.task_events.id
  policy    = data.aws_iam_policy_document.task_events_from_rule.json
}
