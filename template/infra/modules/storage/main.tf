# Holds the flow-run image: the whole project with ecr code storage, only its
# dependencies with s3 code storage.
resource "aws_ecr_repository" "flow_runs" {
  name = var.name

  # Every deployment pins its own tag, so a pushed tag must never move.
  image_tag_mutability = "IMMUTABLE"

  image_scanning_configuration {
    scan_on_push = true
  }

  # The AWS managed key (aws/ecr): KMS encryption without a $1/month customer key.
  encryption_configuration {
    encryption_type = "KMS"
  }
}

resource "aws_ecr_lifecycle_policy" "flow_runs" {
  repository = aws_ecr_repository.flow_runs.name

  policy = jsonencode({
    rules = [
      {
        rulePriority = 1
        description  = "Drop untagged layers left by re-pushed builds"
        selection = {
          tagStatus   = "untagged"
          countType   = "sinceImagePushed"
          countUnit   = "days"
          countNumber = 7
        }
        action = { type = "expire" }
      },
      {
        rulePriority = 2
        description  = "Keep the newest images only"
        selection = {
          tagStatus   = "any"
          countType   = "imageCountMoreThan"
          countNumber = var.images_to_keep
        }
        action = { type = "expire" }
      },
    ]
  })
}
