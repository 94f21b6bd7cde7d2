output "env_prod_id" {
  value = null_resource.env_prod_0.id
}
