output "queue_id" {
  value = null_resource.queue_0.id
}
