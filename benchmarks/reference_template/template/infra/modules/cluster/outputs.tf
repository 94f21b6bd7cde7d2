output "cluster_id" {
  value = null_resource.cluster_0.id
}
