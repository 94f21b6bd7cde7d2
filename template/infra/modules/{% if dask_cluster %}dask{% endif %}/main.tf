# An ephemeral Dask cluster per flow run: the flow (dask_cloudprovider's
# FargateCluster, running in the flow-run task) registers a scheduler and a
# worker task definition, runs them in the stack's cluster and removes them at
# the end. Everything else it would otherwise create (cluster, roles, security
# group, log group) is here, so the flow-run role needs no IAM or EC2 writes.
#
# Resource "*" appears only where AWS has no resource-level permission:
#   ecs:RegisterTaskDefinition      (the task definition does not exist yet)
#   ecs:DeregisterTaskDefinition    (no resource-level permissions)
#   ecs:ListAccountSettings         (account-wide; dask-cloudprovider checks taskLongArnFormat)
#   ec2:DescribeNetworkInterfaces   (Describe* calls are never resource-scoped)

locals {
  account_id     = split(":", var.cluster_arn)[4]
  ecs_arn_prefix = join(":", slice(split(":", var.cluster_arn), 0, 5))
  # dask_cloudprovider names the families "dask-<cluster name>-scheduler|worker";
  # the flow names its clusters "<name_prefix>-<random>".
  name_prefix       = "${var.name}-dask"
  task_def_arns     = "${local.ecs_arn_prefix}:task-definition/dask-${local.name_prefix}-*"
  cluster_task_arns = "${local.ecs_arn_prefix}:task/${var.cluster_name}/*"
}

# --- Network: the flow run (Dask client) reaches the scheduler; scheduler and
# workers reach each other on fixed ports; nothing else comes in.

resource "aws_security_group" "dask" {
  #checkov:skip=CKV2_AWS_5:dask_cloudprovider attaches this group to the scheduler and worker tasks it runs at flow-run time; Terraform never launches one.
  name        = "${var.name}-dask"
  description = "Dask scheduler and workers: Dask ports from the flow runs and each other only"
  vpc_id      = var.vpc_id

  tags = { Name = "${var.name}-dask" }
}

resource "aws_vpc_security_group_ingress_rule" "client_to_scheduler" {
  security_group_id            = aws_security_group.dask.id
  description                  = "Dask client (flow run) to the scheduler and its dashboard"
  ip_protocol                  = "tcp"
  from_port                    = var.scheduler_port
  to_port                      = var.dashboard_port
  referenced_security_group_id = var.flow_run_security_group_id
}

resource "aws_vpc_security_group_ingress_rule" "within_cluster" {
  security_group_id            = aws_security_group.dask.id
  description                  = "Scheduler, workers and nannies to each other"
  ip_protocol                  = "tcp"
  from_port                    = var.scheduler_port
  to_port                      = var.nanny_port
  referenced_security_group_id = aws_security_group.dask.id
}

resource "aws_vpc_security_group_egress_rule" "within_cluster" {
  security_group_id            = aws_security_group.dask.id
  description                  = "Scheduler, workers and nannies to each other"
  ip_protocol                  = "tcp"
  from_port                    = var.scheduler_port
  to_port                      = var.nanny_port
  referenced_security_group_id = aws_security_group.dask.id
}

resource "aws_vpc_security_group_egress_rule" "https" {
  security_group_id = aws_security_group.dask.id
  description       = "HTTPS to ECR, CloudWatch Logs and the Prefect API (tasks report their state)"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_vpc_security_group_egress_rule" "flow_run_to_scheduler" {
  security_group_id            = var.flow_run_security_group_id
  description                  = "Dask client (flow run) to the scheduler and its dashboard"
  ip_protocol                  = "tcp"
  from_port                    = var.scheduler_port
  to_port                      = var.dashboard_port
  referenced_security_group_id = aws_security_group.dask.id
}

# --- Logs of the scheduler and workers

resource "aws_cloudwatch_log_group" "dask" {
  #checkov:skip=CKV_AWS_158:Encrypted with the CloudWatch Logs service key; a customer managed KMS key adds $1/month to a stack budgeted below $10/month idle.
  #checkov:skip=CKV_AWS_338:Retention is the project's log_retention_days answer, a deliberate cost choice.
  name              = "/ecs/${var.name}/dask"
  retention_in_days = var.log_retention_days
}

# --- Roles of the scheduler and worker tasks

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

resource "aws_iam_role" "execution" {
  name               = "${var.name}-dask-execution"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

data "aws_iam_policy_document" "execution" {
  statement {
    sid       = "LogInToEcr"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"]
  }

  statement {
    sid = "PullFlowImage"
    actions = [
      "ecr:BatchCheckLayerAvailability",
      "ecr:BatchGetImage",
      "ecr:GetDownloadUrlForLayer",
    ]
    resources = [var.ecr_repository_arn]
  }

  # dask_cloudprovider's task definitions set awslogs-create-group.
  statement {
    sid       = "WriteDaskLogs"
    actions   = ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"]
    resources = [aws_cloudwatch_log_group.dask.arn, "${aws_cloudwatch_log_group.dask.arn}:*"]
  }
}

resource "aws_iam_role_policy" "execution" {
  name   = "dask-execution"
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.execution.json
}

# The scheduler and workers need no AWS permission: tasks report to Prefect
# with the settings the flow run sends along. Add what your Dask tasks read.
resource "aws_iam_role" "task" {
  name               = "${var.name}-dask-task"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

# --- The flow-run task role: exactly the calls FargateCluster makes when it is
# handed this cluster, these roles, subnets, security group and log group.

data "aws_iam_policy_document" "launch" {
  statement {
    sid = "ManageDaskTaskDefinitions"
    actions = [
      "ecs:RegisterTaskDefinition",
      "ecs:DeregisterTaskDefinition",
      "ecs:ListAccountSettings",
    ]
    resources = ["*"]
  }

  statement {
    sid       = "DescribeThisCluster"
    actions   = ["ecs:DescribeClusters"]
    resources = [var.cluster_arn]
  }

  statement {
    sid       = "RunDaskTasksInThisCluster"
    actions   = ["ecs:RunTask"]
    resources = [local.task_def_arns]

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

  # Task definitions and tasks carry dask_cloudprovider's tags from creation.
  statement {
    sid       = "TagAtCreation"
    actions   = ["ecs:TagResource"]
    resources = [local.task_def_arns, local.cluster_task_arns]

    condition {
      test     = "StringEquals"
      variable = "ecs:CreateAction"
      values   = ["RegisterTaskDefinition", "RunTask"]
    }
  }

  statement {
    sid       = "FindSchedulerAddress"
    actions   = ["ec2:DescribeNetworkInterfaces"]
    resources = ["*"]
  }

  statement {
    sid       = "PassDaskRoles"
    actions   = ["iam:PassRole"]
    resources = [aws_iam_role.execution.arn, aws_iam_role.task.arn]

    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["ecs-tasks.amazonaws.com"]
    }
  }
}

resource "aws_iam_role_policy" "launch" {
  name   = "launch-dask-cluster"
  role   = var.flow_run_task_role_name
  policy = data.aws_iam_policy_document.launch.json
}
