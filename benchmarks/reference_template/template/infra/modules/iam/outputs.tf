output "iam_id" {
  value = null_resource.iam_0.id
}
