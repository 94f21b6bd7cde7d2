output "bootstrap_id" {
  value = null_resource.bootstrap_0.id
}
