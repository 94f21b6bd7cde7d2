output "network_id" {
  value = null_resource.network_0.id
}
