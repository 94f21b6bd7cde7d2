output "alarm_id" {
  value = null_resource.alarm_0.id
}
