"""Apply the rendered stack on an AWS emulator (moto), run the Prefect ECS worker against it, destroy it.

For each answer set in E2E_ANSWER_SETS, the pipeline a user follows:
bootstrap the state bucket (S3 backend) -> create the "existing" VPC
(existing_vpc) -> init + apply every env root -> `plan -detailed-exitcode`
clean -> make work-pool -> make deploy -> make automation -> the ECS worker
launches a flow run -> (on the stacks whose tasks do not execute; see
test_task_lifecycle.py for the others) ECS reports the Spot task STOPPED ->
the run is Crashed, the automation starts the crash-recovery handler, which
re-runs it (after a Spot crash on on-demand FARGATE) -> destroy leaves
nothing behind.

Tests are parametrized per function (not by a module fixture) so pytest runs
every answer set's apply test, then every Prefect test, then every destroy:
the applies and the destroys of all answer sets overlap (see stacks.py).
BROKEN_RENDERS are renders broken on purpose; the pipeline must stop at
the named step.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import dask_calls
import emulator
import pytest
from answer_stacks import BROKEN_RENDERS, E2E_ANSWER_SETS, EXECUTING_SETS
from pipeline import StepFailed, step
from prefect.client.schemas.objects import StateType
from stacks import EmulatedStack, Stacks
from support.answer_sets import ANSWER_SETS, sets_where
from worker_run import CODE_VERSION, PrefectProject, check_run_task, stop_process, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]


def _applied(stacks: Stacks, name: str) -> EmulatedStack:
    try:
        return stacks.applied_stack(name)
    except StepFailed as failure:
        pytest.skip(f"the stack was not applied: {failure}")


def test_rendered_terraform_has_no_emulator_settings(project: Path) -> None:
    """Emulator endpoints and fake credentials exist only in the test's override file."""
    emulator_setting = re.compile(
        r"skip_credentials_validation|skip_requesting_account_id|skip_metadata_api_check"
        r"|s3_use_path_style|use_path_style|\bendpoints\s*[={]|\baccess_key\b|\bsecret_key\b"
        r"|(localhost|127\.0\.0\.1)(?!:8080/health)"  # the worker's health check probes its own container
    )
    hits = [
        f"{path.relative_to(project)}:{number}: {line.strip()}"
        for path in sorted((project / "infra").rglob("*"))
        if path.is_file() and path.suffix in {".tf", ".tfvars", ".hcl", ".tfbackend"}
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if emulator_setting.search(line)
    ]
    assert not hits, "emulator settings in the rendered Terraform:\n" + "\n".join(hits)
    assert not list(project.rglob(emulator.OVERRIDE_FILE))


@pytest.mark.parametrize("name", E2E_ANSWER_SETS)
def test_apply_then_plan_is_clean(stacks: Stacks, name: str) -> None:
    stacks.applied_stack(name)


@pytest.mark.parametrize("name", E2E_ANSWER_SETS)
def test_environments_do_not_share_resources(stacks: Stacks, name: str) -> None:
    stack = _applied(stacks, name)
    for key in (
        "cluster_arn",
        "work_pool_name",
        "ecr_repository_url",
        "prefect_secret_arn",
        "worker_log_group",
    ):
        values = [outputs[key] for outputs in stack.outputs.values()]
        assert len(set(values)) == len(values), f"{key} is shared between environments: {values}"


@pytest.mark.parametrize("name", E2E_ANSWER_SETS)
def test_every_alarm_notifies_the_environments_topic(stacks: Stacks, name: str) -> None:
    """Three alarms per environment, all to its own SNS topic; task events dead-letter after 5 receives."""
    stack = _applied(stacks, name)
    region = stack.project.region
    cloudwatch, sns, sqs = (stack.server.client(service, region) for service in ("cloudwatch", "sns", "sqs"))
    email = stack.project.answers.get("alarm_email", "")
    for env, outputs in stack.outputs.items():
        prefix = outputs["work_pool_name"]
        topic = outputs["alarm_topic_arn"]
        assert topic.endswith(f":{prefix}-alarms"), topic
        alarms = cloudwatch.describe_alarms(AlarmNamePrefix=f"{prefix}-")["MetricAlarms"]
        assert sorted(alarm["AlarmName"] for alarm in alarms) == [
            f"{prefix}-ecs-task-events-backlog",
            f"{prefix}-ecs-task-events-dlq-not-empty",
            f"{prefix}-worker-not-running",
        ], env
        for alarm in alarms:
            assert alarm["AlarmActions"] == alarm["OKActions"] == [topic], alarm["AlarmName"]
        subscriptions = sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
        assert [(s["Protocol"], s["Endpoint"]) for s in subscriptions] == (
            [("email", email)] if email else []
        )
        queue_url = sqs.get_queue_url(QueueName=f"{prefix}-ecs-task-events")["QueueUrl"]
        attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["RedrivePolicy"])
        redrive = json.loads(attributes["Attributes"]["RedrivePolicy"])
        assert redrive["deadLetterTargetArn"].endswith(f":{prefix}-ecs-task-events-dlq"), redrive
        assert int(redrive["maxReceiveCount"]) == 5


GITHUB_E2E_ANSWER_SETS = [name for name in E2E_ANSWER_SETS if name in sets_where("ci_provider", "github")]


@pytest.mark.parametrize("name", GITHUB_E2E_ANSWER_SETS)
def test_github_deploy_roles_trust_the_accounts_one_oidc_provider(stacks: Stacks, name: str) -> None:
    """One env creates GitHub's provider; in an account that has it, every env reuses it."""
    stack = _applied(stacks, name)
    iam = stack.server.client("iam", stack.project.region)
    providers = [p["Arn"] for p in iam.list_open_id_connect_providers()["OpenIDConnectProviderList"]]
    assert len(providers) == 1, providers
    (provider,) = providers
    assert provider.endswith(":oidc-provider/token.actions.githubusercontent.com"), provider
    if stack.github_oidc_provider_arn is not None:
        assert provider == stack.github_oidc_provider_arn, "Terraform replaced the account's own provider"
    for env, outputs in stack.outputs.items():
        role = iam.get_role(RoleName=outputs["github_deploy_role_arn"].rsplit("/", 1)[-1])["Role"]
        principals = [s["Principal"]["Federated"] for s in role["AssumeRolePolicyDocument"]["Statement"]]
        assert principals == [provider], f"{env}: {principals}"


DEFAULT_EGRESS = {
    "worker": {("tcp", 443, 443, "0.0.0.0/0", "HTTPS to the Prefect API, ECR, Docker Hub and AWS APIs")},
    "flow-runs": {("tcp", 443, 443, "0.0.0.0/0", "Outbound TCP 443")},
}
# With a Dask cluster, the dask module adds one rule to the flow-run group: the
# client's way to its scheduler (to the Dask group, so no CIDR).
DASK_CLIENT_EGRESS = ("tcp", 8786, 8787, None, "Dask client (flow run) to the scheduler and its dashboard")
CUSTOM_EGRESS_RULES = {
    "worker": {
        ("tcp", 443, 443, "0.0.0.0/0", "Outbound TCP 443"),
        ("tcp", 4200, 4200, "10.80.0.0/16", "Prefect server"),
    },
    "flow-runs": {
        ("tcp", 443, 443, "0.0.0.0/0", "Outbound TCP 443"),
        ("tcp", 5432, 5433, "10.80.0.0/16", "Warehouse"),
    },
}


@pytest.mark.parametrize("name", E2E_ANSWER_SETS)
def test_security_groups_have_the_environments_egress_and_no_ingress(stacks: Stacks, name: str) -> None:
    """Defaults: HTTPS out only. An env whose terraform.tfvars sets worker/flow_run_egress gets those."""
    stack = _applied(stacks, name)
    ec2 = stack.server.client("ec2", stack.project.region)
    for env, outputs in stack.outputs.items():
        expected = CUSTOM_EGRESS_RULES if env == stack.custom_egress_env else DEFAULT_EGRESS
        for group in ("worker", "flow-runs"):
            group_name = f"{outputs['work_pool_name']}-{group}"
            (group_id,) = [
                g["GroupId"]
                for g in ec2.describe_security_groups(
                    Filters=[{"Name": "group-name", "Values": [group_name]}]
                )["SecurityGroups"]
            ]
            rules = ec2.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [group_id]}])[
                "SecurityGroupRules"
            ]
            assert not [rule for rule in rules if not rule["IsEgress"]], f"{env} {group}: inbound rules"
            egress = {
                (r["IpProtocol"], r["FromPort"], r["ToPort"], r.get("CidrIpv4"), r.get("Description"))
                for r in rules
                if r["IsEgress"]
            }
            dask = group == "flow-runs" and stack.project.answers.get("dask_cluster", False)
            assert egress == expected[group] | ({DASK_CLIENT_EGRESS} if dask else set()), f"{env} {group}"
        flow_groups = outputs["work_pool_job_variables"]["network_configuration"]["securityGroups"]
        assert flow_groups == [
            g["GroupId"]
            for g in ec2.describe_security_groups(
                Filters=[{"Name": "group-name", "Values": [f"{outputs['work_pool_name']}-flow-runs"]}]
            )["SecurityGroups"]
        ]


def launch_flow_run(stacks: Stacks, stack: EmulatedStack) -> None:
    """make work-pool, make deploy, make automation; the ECS worker launches a run of etl-daily."""
    env = stack.environments[0]
    side = stack.prefect = PrefectProject(stack.project, env, stacks.prefect_server(stack.name), stack.server)
    outputs = side.outputs()
    with step("work-pool"):
        side.create_work_pool()
    with step("deploy"):
        side.deploy()
        if outputs.get("code_bucket"):
            keys = [
                item["Key"]
                for item in stack.server.client("s3", stack.project.region)
                .list_objects_v2(Bucket=outputs["code_bucket"])
                .get("Contents", [])
            ]
            package, slug = stack.project.answers["package_name"], stack.project.answers["project_slug"]
            # Each deploy writes its own folder (make deploy's CODE_VERSION).
            assert f"{slug}/{CODE_VERSION}/src/{package}/flows/etl.py" in keys, keys
            assert not any("/infra/" in key or "/.venv/" in key for key in keys), keys
    with step("automation"):
        side.create_automations()
    with step("worker-run"):
        log = stack.project.workdir / "worker.log"
        stack.worker = side.start_worker(log)
        flow_run = side.run_deployment(f"etl/etl-daily-{env}")
        stack.flow_run_id = flow_run.id
        requests = wait_for(
            f"the worker's RunTask for flow run {flow_run.id} (worker log: {log})",
            lambda: side.run_task_requests_for(flow_run.id),
            timeout=180,
        )
        stack.run_task_request = requests[0]
        check_run_task(side, stack.run_task_request)
        wait_for(
            "the flow run to be Pending",
            lambda: side.read_flow_run(flow_run.id).state.type == StateType.PENDING,
            timeout=60,
        )


@pytest.mark.parametrize("name", E2E_ANSWER_SETS)
def test_worker_runs_a_deployment_on_the_stack(stacks: Stacks, name: str) -> None:
    launch_flow_run(stacks, _applied(stacks, name))


ON_DEMAND = [{"capacityProvider": "FARGATE", "weight": 1, "base": 0}]


def _recover(side: PrefectProject, flow_run_id, crashes: int) -> str:
    """Wait for the automation's handler run (launched on on-demand FARGATE), then run it as its container."""
    handler_run = wait_for(
        f"the crash-recovery automation to start handler run {crashes} for {flow_run_id}",
        lambda: len(runs := side.crash_recovery_runs(flow_run_id)) >= crashes and runs,
        timeout=120,
    )
    assert len(handler_run) == crashes, "one handler run per Crashed event"
    handler_run = max(handler_run, key=lambda run: run.created)
    requests = wait_for(
        f"the worker's RunTask for handler run {handler_run.id}",
        lambda: side.run_task_requests_for(handler_run.id),
        timeout=180,
    )
    assert requests[0]["capacityProviderStrategy"] == ON_DEMAND, "the handler itself never runs on Spot"
    return side.run_crash_recovery_like_its_container(handler_run)


# test_task_lifecycle.py runs these crashes with running tasks on the executing stacks.
HAND_PLAYED_SETS = [name for name in E2E_ANSWER_SETS if name not in EXECUTING_SETS]


@pytest.mark.parametrize("name", HAND_PLAYED_SETS)
def test_spot_interruption_crashes_the_run_and_automation_reruns_it(stacks: Stacks, name: str) -> None:
    """STOPPED event: EventBridge -> SQS -> the worker's observer -> Crashed -> automation -> handler
    -> re-run (an out-of-memory stop: not Spot); then a Spot SIGTERM reported by the engine, its
    task stopped with SpotInterruption -> re-run on on-demand FARGATE only. The test plays the
    flow run's and the handler's containers."""
    stack = _applied(stacks, name)
    if stack.run_task_request is None:
        pytest.skip("no flow run was launched (see test_worker_runs_a_deployment_on_the_stack)")
    side, flow_run_id = stack.prefect, stack.flow_run_id
    assert side is not None and flow_run_id is not None
    side.start_flow_run_like_the_container(flow_run_id)
    with step("crash"):
        side.stop_task(
            stack.run_task_request,
            exit_code=137,
            stop_code="EssentialContainerExited",
            reason="OutOfMemoryError: Container killed due to memory usage",
        )

        def crashed() -> bool:
            with side.client() as client:
                return any(
                    state.type == StateType.CRASHED for state in client.read_flow_run_states(flow_run_id)
                )

        wait_for("the worker's observer to mark the flow run Crashed", crashed, timeout=120)

    if not side.handler_module().is_file():
        return
    retries = stack.project.answers.get("crash_retries", 2)
    with step("recovery"):
        # ECS's stop code names no Spot cause: re-run on the deployment's strategy.
        outcome = _recover(side, flow_run_id, 1)
        assert outcome.startswith(f"re-run 1 of {retries} after a crash by a cause other than Spot"), outcome
        requests = wait_for(
            "the worker to launch the re-run",
            lambda: len(found := side.run_task_requests_for(flow_run_id)) > 1 and found,
            timeout=180,
        )
        check_run_task(side, requests[1])

        # Spot again, now seen by the engine in the container (SIGTERM through tini).
        side.start_flow_run_like_the_container(flow_run_id)
        side.crash_like_the_engine_on_sigterm(flow_run_id)
        side.stop_task(
            requests[1], exit_code=143, stop_code="SpotInterruption", reason="Your Spot Task was interrupted."
        )
        outcome = _recover(side, flow_run_id, 2)
        assert outcome.startswith(f"re-run 2 of {retries} after a crash by Spot"), outcome
        assert "stop code SpotInterruption" in outcome and outcome.endswith("on on-demand FARGATE"), outcome
        requests = wait_for(
            "the worker to launch the re-run on on-demand FARGATE",
            lambda: len(found := side.run_task_requests_for(flow_run_id)) > 2 and found,
            timeout=180,
        )
        assert requests[2]["capacityProviderStrategy"] == ON_DEMAND
        with side.client() as client:
            assert client.read_flow_run(flow_run_id).job_variables["capacity_provider_strategy"] == ON_DEMAND
    stop_process(stack.worker)


@pytest.mark.parametrize("name", sorted(BROKEN_RENDERS))
def test_broken_render_stops_the_pipeline_at_the_right_step(stacks: Stacks, name: str) -> None:
    expected_step = BROKEN_RENDERS[name][2]
    try:
        with pytest.raises(StepFailed) as failure:
            stack = stacks.applied_stack(f"broken-{name}")
            launch_flow_run(stacks, stack)
    finally:
        stacks.release(f"broken-{name}")
    assert failure.value.step == expected_step, str(failure.value)


DASK_E2E_ANSWER_SETS = [name for name in E2E_ANSWER_SETS if ANSWER_SETS[name].get("dask_cluster")]


@pytest.mark.parametrize("name", DASK_E2E_ANSWER_SETS)
def test_dask_cluster_calls_are_exactly_what_the_flow_run_role_allows(
    stacks: Stacks, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Dask flow's FargateCluster, given the work pool's env, against the applied stack."""
    stack = _applied(stacks, name)
    outputs = stack.outputs[stack.environments[0]]
    job_variables = outputs["work_pool_job_variables"]
    dask_env = job_variables["env"]
    region, server = stack.project.region, stack.server
    for key, value in server.client_env(region).items():
        monkeypatch.setenv(key, value)
    dask_calls.prepare_emulator(server, region)
    try:
        with step("dask-cluster"):
            module = dask_calls.load_dask_cluster(stack.project.project)
            calls = dask_calls.record_cluster_calls(module, dask_env, f"{outputs['ecr_repository_url']}:e2e")
    finally:
        dask_calls.set_task_progression(server, "immediate")

    operations = [f"{call.service}:{call.operation}" for call in calls]
    for operation in (
        "ecs:RegisterTaskDefinition",
        "ecs:RunTask",
        "ecs:StopTask",
        "ecs:DeregisterTaskDefinition",
    ):
        assert operations.count(operation) == 2, (operation, operations)  # scheduler and worker

    # Every call is allowed by the flow-run task role's policies ...
    iam = server.client("iam", region)
    policies = dask_calls.role_statements(iam, job_variables["task_role_arn"].rsplit("/", 1)[-1])
    statements = [statement for policy in policies.values() for statement in policy]
    prefix = dask_calls._arn_prefix(job_variables["cluster"])
    needed = [permission for call in calls for permission in dask_calls.required_permissions(call, prefix)]
    denied = [
        permission for permission in needed if not dask_calls.allowing_statements(statements, permission)
    ]
    assert not denied, "calls the flow-run role does not allow:\n" + "\n".join(map(str, denied))
    # ... and the Dask policy grants nothing those calls do not use.
    launch = policies["launch-dask-cluster"]
    unused = [
        statement
        for statement in launch
        if not any(statement in dask_calls.allowing_statements([statement], p) for p in needed)
    ]
    assert not unused, f"statements no call needs: {unused}"
    granted = {action for statement in launch for action in dask_calls.as_list(statement["Action"])}
    assert granted == {permission.action for permission in needed}
    # Scoped: not another family in this cluster, not this family in another cluster.
    task_definition = next(p.resource for p in needed if p.action == "ecs:RunTask")
    other_family = f"{prefix}:task-definition/{job_variables['family']}:1"
    cluster = (("ecs:cluster", job_variables["cluster"]),)
    other_cluster = (("ecs:cluster", f"{prefix}:cluster/someone-else"),)
    assert not dask_calls.allowing_statements(
        launch, dask_calls.Permission("ecs:RunTask", other_family, cluster)
    )
    assert not dask_calls.allowing_statements(
        launch, dask_calls.Permission("ecs:RunTask", task_definition, other_cluster)
    )
    passed = dask_calls.Permission(
        "iam:PassRole",
        job_variables["execution_role_arn"],
        (("iam:PassedToService", "ecs-tasks.amazonaws.com"),),
    )
    assert not dask_calls.allowing_statements(launch, passed)

    # The tasks run in this stack: its cluster, subnets, the Dask security group and roles.
    registered = [call.params for call in calls if call.operation == "RegisterTaskDefinition"]
    for params in registered:
        assert params["executionRoleArn"] == dask_env["DASK_ECS_EXECUTION_ROLE_ARN"]
        assert params["taskRoleArn"] == dask_env["DASK_ECS_TASK_ROLE_ARN"]
        log_options = params["containerDefinitions"][0]["logConfiguration"]["options"]
        assert log_options["awslogs-group"] == dask_env["DASK_ECS_LOG_GROUP"]
    requests = [r for r in server.run_task_requests() if "/dask-" in r["taskDefinition"]]
    assert len(requests) == 2, requests
    spot = ANSWER_SETS[name].get("dask_workers_on_spot", True)
    for request in requests:
        network = request["networkConfiguration"]["awsvpcConfiguration"]
        assert request["cluster"] == job_variables["cluster"]
        assert network["subnets"] == job_variables["network_configuration"]["subnets"]
        assert network["securityGroups"] == [dask_env["DASK_ECS_SECURITY_GROUPS"]]
        role = "scheduler" if request["taskDefinition"].rsplit(":", 1)[0].endswith("-scheduler") else "worker"
        provider = "FARGATE_SPOT" if spot and role == "worker" else "FARGATE"
        if spot:
            assert request["capacityProviderStrategy"] == [{"capacityProvider": provider}], request
        else:
            assert request["launchType"] == "FARGATE", request

    # Inbound to the Dask tasks: Dask's ports, from the flow runs and from each other only.
    ec2 = server.client("ec2", region)
    dask_group = dask_env["DASK_ECS_SECURITY_GROUPS"]
    flow_run_group = job_variables["network_configuration"]["securityGroups"][0]
    rules = ec2.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [dask_group]}])
    inbound = sorted(
        (
            rule["FromPort"],
            rule["ToPort"],
            rule.get("ReferencedGroupInfo", {}).get("GroupId"),
            rule.get("CidrIpv4"),
        )
        for rule in rules["SecurityGroupRules"]
        if not rule["IsEgress"]
    )
    assert inbound == [(8786, 8787, flow_run_group, None), (8786, 8789, dask_group, None)]


def _is_task_definition_of(item: str, families: set[str]) -> bool:
    return item.startswith("ecs-task-definition:") and item.rsplit("/", 1)[-1].rsplit(":", 1)[0] in families


@pytest.mark.parametrize("name", E2E_ANSWER_SETS)
def test_destroy_leaves_nothing(stacks: Stacks, name: str) -> None:
    stack = _applied(stacks, name)
    with step("destroy"):
        left = stacks.destroy(name)
    # The worker registers the flow-run task definitions itself, outside Terraform
    # (on AWS too: they cost nothing and are reused by the next deploy).
    families = {outputs["work_pool_job_variables"]["family"] for outputs in stack.outputs.values()}
    left = {item for item in left if not _is_task_definition_of(item, families)}
    assert not left, "destroy left resources behind:\n" + "\n".join(sorted(left))
