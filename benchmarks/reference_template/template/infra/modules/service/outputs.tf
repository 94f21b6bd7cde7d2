output "service_id" {
  value = null_resource.service_0.id
}
