# The worker's two roles, each with only what its task does. Resource "*"
# appears only for actions AWS cannot scope to a resource:
#   ecs:RegisterTaskDefinition                 (the task definition does not exist yet)
#   ecs:DescribeTaskDefinition, ecs:DeregisterTaskDefinition (no resource-level permissions)
#   ec2:DescribeVpcs, ec2:DescribeSubnets      (Describe* calls are never resource-scoped)

locals {
  # "arn:<partition>:ecs:<region>:<account>" taken from the cluster ARN.
  account_id             = split(":", var.cluster_arn)[4]
  ecs_arn_prefix         = join(":", slice(split(":", var.cluster_arn), 0, 5))
  cluster_task_arns      = "${local.ecs_arn_prefix}:task/${var.cluster_name}/*"
  flow_run_task_def_arns = "${local.ecs_arn_prefix}:task-definition/${var.flow_runs.family}*"
}

data "aws_iam_policy_document" "ecs_tasks_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

# --- Execution role (pulls its public image, writes its log, reads the secret)

resource "aws_iam_role" "execution" {
  name               = "${var.name}-worker-execution"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

data "aws_iam_policy_document" "execution" {
  statement {
    sid       = "WriteWorkerLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.worker.arn}:*"]
  }

  statement {
    sid       = "ReadPrefectSecret"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [var.secret_arn]
  }
}

resource "aws_iam_role_policy" "execution" {
  name   = "worker-execution"
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.execution.json
}

# --- Task role (what prefect-aws's ECS worker and its task observer call)

resource "aws_iam_role" "task" {
  name               = "${var.name}-worker-task"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

data "aws_iam_policy_document" "task" {
  statement {
    sid = "ManageFlowRunTaskDefinitions"
    actions = [
      "ecs:RegisterTaskDefinition",
      "ecs:DescribeTaskDefinition",
      "ecs:DeregisterTaskDefinition",
    ]
    resources = ["*"]
  }

  statement {
    sid       = "RunFlowRunTasksInThisCluster"
    actions   = ["ecs:RunTask"]
    resources = [local.flow_run_task_def_arns]

    condition {
      test     = "ArnEquals"
      variable = "ecs:cluster"
      values   = [var.cluster_arn]
    }
  }

  statement {
    sid       = "WatchAndStopTasksInThisCluster"
    actions   = ["ecs:DescribeTasks", "ecs:StopTask"]
    resources = [local.cluster_task_arns]

    condition {
      test     = "ArnEquals"
      variable = "ecs:cluster"
      values   = [var.cluster_arn]
    }
  }

  # RunTask passes the flow run's tags; ECS checks TagResource for them.
  statement {
    sid       = "TagTasksAtLaunch"
    actions   = ["ecs:TagResource"]
    resources = [local.cluster_task_arns]

    condition {
      test     = "StringEquals"
      variable = "ecs:CreateAction"
      values   = ["RunTask"]
    }
  }

  statement {
    sid       = "CheckNetworkConfiguration"
    actions   = ["ec2:DescribeVpcs", "ec2:DescribeSubnets"]
    resources = ["*"]
  }

  # The observer forwards the last log lines of flow runs that crashed early.
  statement {
    sid       = "ReadFlowRunLogs"
    actions   = ["logs:GetLogEvents"]
    resources = ["${var.flow_runs.log_group_arn}:*"]
  }

  statement {
    sid = "ConsumeTaskEvents"
    actions = [
      "sqs:GetQueueUrl",
      "sqs:ReceiveMessage",
      "sqs:DeleteMessage",
      "sqs:ChangeMessageVisibility",
    ]
    resources = [var.observer_queue_arn]
  }

  statement {
    sid     = "PassFlowRunRoles"
    actions = ["iam:PassRole"]
    resources = [
      var.flow_runs.execution_role_arn,
      var.flow_runs.task_role_arn,
    ]

    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["ecs-tasks.amazonaws.com"]
    }
  }
}

resource "aws_iam_role_policy" "task" {
  name   = "prefect-ecs-worker"
  role   = aws_iam_role.task.id
  policy = data.aws_iam_policy_document.task.json
}
