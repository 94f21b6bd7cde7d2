# The observer reads one message at a time as it arrives, so the queue is
# near empty while it keeps up. A backlog that stays means it is down (the
# worker stopped, or lacks access to the queue) or cannot keep pace; crashed
# runs are then marked late or not at all.
resource "aws_cloudwatch_metric_alarm" "task_events_backlog" {
  alarm_name        = "${aws_sqs_queue.task_events.name}-backlog"
  alarm_description = "More than ${var.backlog_alarm_threshold} ECS task events have waited in ${aws_sqs_queue.task_events.name} for ${var.backlog_alarm_minutes} minutes: the worker's task observer is down or behind, so crashed flow runs are not marked Crashed in time."

  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = aws_sqs_queue.task_events.name }
  statistic           = "Minimum"
  period              = 60
  evaluation_periods  = var.backlog_alarm_minutes
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.backlog_alarm_threshold
  # SQS stops publishing for a queue idle for hours: nothing queued.
  treat_missing_data = "notBreaching"

  alarm_actions = [var.alarm_sns_topic_arn]
  ok_actions    = [var.alarm_sns_topic_arn]
}

resource "aws_cloudwatch_metric_alarm" "task_events_dead_letters" {
  alarm_name        = "${aws_sqs_queue.task_events_dead_letter.name}-not-empty"
  alarm_description = "ECS task events are in ${aws_sqs_queue.task_events_dead_letter.name}: the worker's task observer received each ${var.max_receive_count} times without handling it. Read them, fix the cause, then redrive or purge the queue."

  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = aws_sqs_queue.task_events_dead_letter.name }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"

  alarm_actions = [var.alarm_sns_topic_arn]
  ok_actions    = [var.alarm_sns_topic_arn]
}
