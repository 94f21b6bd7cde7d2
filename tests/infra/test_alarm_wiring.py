"""Every alarm reaches people: the rendered Terraform, read with python-hcl2.

- every CloudWatch alarm of every module notifies `var.alarm_sns_topic_arn`
  when it fires and when it clears;
- the stack gives each module with alarms the one topic, `local.alarm_topic_arn`:
  the team's `alarm_sns_topic_arn`, else the `alerts` module's topic, which is
  created only when that is empty;
- the task-event queue dead-letters into its own queue.

tests/e2e/test_emulated_stack.py checks the same on the emulator after apply.
"""

from __future__ import annotations

from pathlib import Path

from support.hcl import load_module, local_source


def alarms_by_module(project: Path) -> dict[str, list]:
    stack = load_module(project / "infra" / "stack")
    found = {}
    for name, call in stack.module_calls.items():
        module = load_module(local_source(stack, call))
        alarms = [
            block for block in module.of_kind("resource") if block.labels[0] == "aws_cloudwatch_metric_alarm"
        ]
        if alarms:
            found[name] = alarms
    return found


def test_every_alarm_notifies_the_environments_topic(project: Path) -> None:
    stack = load_module(project / "infra" / "stack")
    assert not [
        block for block in stack.of_kind("resource") if block.labels[0] == "aws_cloudwatch_metric_alarm"
    ]
    found = alarms_by_module(project)
    assert {"worker", "task_observer"} <= set(found), found
    for name, alarms in found.items():
        passed = str(stack.module_calls[name].body.get("alarm_sns_topic_arn"))
        assert "local.alarm_topic_arn" in passed, f"module {name} gets alarm_sns_topic_arn = {passed}"
        for alarm in alarms:
            for key in ("alarm_actions", "ok_actions"):
                assert "var.alarm_sns_topic_arn" in str(alarm.body.get(key)), f"{alarm.where}: {key}"

    entries = [entry for parsed in stack.files.values() for entry in parsed.get("locals", [])]
    (topic,) = [str(entry["alarm_topic_arn"]) for entry in entries if "alarm_topic_arn" in entry]
    assert "var.alarm_sns_topic_arn" in topic and "module.alerts[0].topic_arn" in topic, topic
    count = str(stack.module_calls["alerts"].body["count"])
    assert 'var.alarm_sns_topic_arn == ""' in count, count


def test_task_events_dead_letter(project: Path) -> None:
    observer = load_module(project / "infra" / "modules" / "task_observer")
    queue = observer.resources[("aws_sqs_queue", "task_events")].body
    redrive = str(queue["redrive_policy"])
    assert "aws_sqs_queue.task_events_dead_letter.arn" in redrive and "maxReceiveCount" in redrive, redrive
    assert ("aws_sqs_queue", "task_events_dead_letter") in observer.resources
