output "logs_id" {
  value = null_resource.logs_0.id
}
