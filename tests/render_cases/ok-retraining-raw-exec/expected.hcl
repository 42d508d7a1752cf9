job "demand-retrain" {
  type        = "batch"
  datacenters = ["dc1"]
  namespace   = "training"
  region      = "us-east"

  meta = {
    "nomadml.managed" = "true"
    "nomadml.model" = "demand"
    "nomadml.role" = "retraining"
    "nomadml.spec_hash" = "<spec-hash>"
    "nomadml.tool_version" = "<tool-version>"
  }

  periodic {
    crons            = ["*/30 2-4 * * MON-FRI"]
    time_zone        = "America/New_York"
    prohibit_overlap = true
  }

  group "train" {
    count = 1

    restart {
      attempts = 0
      mode     = "fail"
    }

    reschedule {
      attempts  = 0
      unlimited = false
    }

    task "train" {
      driver = "raw_exec"
      config {
        command = "/opt/venv/bin/python"
        args    = ["-m", "demand.train", "--epochs", "5", "--data", "s3://bucket/demand/"]
      }
      env = {
        NOMADML_MODEL_NAME = "demand"
        NOMADML_AUTO_DEPLOY = "true"
      }
      resources {
        cpu    = 4000
        memory = 8192
      }

    }
  }
}
