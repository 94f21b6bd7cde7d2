output "storage_id" {
  value = null_resource.storage_0.id
}
