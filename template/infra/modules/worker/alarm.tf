# AWS/ECS CPUUtilization is published for every service once a minute while at
# least one of its tasks runs, with or without Container Insights. Its
# SampleCount therefore drops to nothing when the worker is down, and missing
# data counts as breaching, so the alarm fires without paying for Insights.
resource "aws_cloudwatch_metric_alarm" "worker_not_running" {
  alarm_name        = "${aws_ecs_service.worker.name}-not-running"
  alarm_description = "The Prefect worker service ${aws_ecs_service.worker.name} has had no running task for ${var.alarm_evaluation_minutes} minutes: no flow run is being started."

  namespace   = "AWS/ECS"
  metric_name = "CPUUtilization"
  dimensions = {
    ClusterName = var.cluster_name
    ServiceName = aws_ecs_service.worker.name
  }
  statistic           = "SampleCount"
  period              = 60
  evaluation_periods  = var.alarm_evaluation_minutes
  comparison_operator = "LessThanThreshold"
  threshold           = 1
  treat_missing_data  = "breaching"

  alarm_actions = var.alarm_sns_topic_arn == "" ? [] : [var.alarm_sns_topic_arn]
  ok_actions    = var.alarm_sns_topic_arn == "" ? [] : [var.alarm_sns_topic_arn]
}
