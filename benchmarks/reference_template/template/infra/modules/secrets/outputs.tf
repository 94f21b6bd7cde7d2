output "secrets_id" {
  value = null_resource.secrets_0.id
}
