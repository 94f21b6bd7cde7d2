output "env_dev_id" {
  value = null_resource.env_dev_0.id
}
