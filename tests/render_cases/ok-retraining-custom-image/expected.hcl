job "demand-retrain" {
  type        = "batch"
  datacenters = ["*"]
  namespace   = "default"
  region      = "global"

  meta = {
    "nomadml.managed" = "true"
    "nomadml.model" = "demand"
    "nomadml.role" = "retraining"
    "nomadml.spec_hash" = "<spec-hash>"
    "nomadml.tool_version" = "<tool-version>"
  }

  periodic {
    crons            = ["0 3 * * *"]
    time_zone        = "UTC"
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
      driver = "docker"
      config {
        image        = "registry.example.com/team/trainer:7"
        network_mode = "host"
        command = "train"
        args    = ["--fast"]
      }
      env = {
        NOMADML_MODEL_NAME = "demand"
        NOMADML_AUTO_DEPLOY = "false"
        # The job carries its own spec: the run needs no file on the client.
        NOMADML_SPEC_TOML   = "# Retraining in the operator's own trainer image; a single-word command.\n[model]\nname = \"demand\"\n\n[retraining]\nimage = \"registry.example.com/team/trainer:7\"\ncommand = [\"train\"]\nargs = [\"--fast\"]\n"
        # Relative [data] paths are the spec file's: where it was when scheduled.
        NOMADML_SPEC_DIR    = "<spec-dir>"
      }
      resources {
        cpu    = 500
        memory = 512
      }

    }
  }
}
