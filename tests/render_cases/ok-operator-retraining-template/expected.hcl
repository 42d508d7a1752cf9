job "pricing-retrain" {
  type        = "batch"
  datacenters = ["*"]
  namespace   = "default"
  region      = "global"

  meta = {
    "nomadml.managed" = "true"
    "nomadml.model" = "pricing"
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
        image        = "127.0.0.1:5000/nomadml/trainer:<reference-tag>"
        network_mode = "host"
        command = "nomadml"
        args    = ["retrain"]
      }
      env = {
        NOMADML_MODEL_NAME = "pricing"
        NOMADML_AUTO_DEPLOY = "false"
        # The job carries its own spec: the run needs no file on the client.
        NOMADML_SPEC_TOML   = "[model]\nname = \"pricing\"\n\n[templates]\npath = [\"tpl\"]\nretraining = \"retraining-with-data.nomad.hcl\"\n"
        # Relative [data] paths are the spec file's: where it was when scheduled.
        NOMADML_SPEC_DIR    = "<spec-dir>"
      }
      resources {
        cpu    = 500
        memory = 512
      }

      artifact {
        source      = "s3::https://s3.amazonaws.com/training-data/pricing/latest.tgz"
        destination = "local/data"
      }

    }
  }
}
