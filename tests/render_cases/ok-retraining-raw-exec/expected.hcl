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
        command = "/opt/venv/bin/nomadml"
        args    = ["retrain"]
      }
      env = {
        NOMADML_MODEL_NAME = "demand"
        NOMADML_AUTO_DEPLOY = "true"
        # The job carries its own spec: the run needs no file on the client.
        NOMADML_SPEC_TOML   = "# A nightly-ish retraining job that runs a host command (no image).\n[model]\nname = \"demand\"\n\n[placement]\ndatacenters = [\"dc1\"]\nnamespace = \"training\"\nregion = \"us-east\"\n\n[retraining]\nenabled = true\ntrainer = [\"/opt/venv/bin/python\", \"-m\", \"demand.train\", \"--epochs\", \"5\", \"--data\", \"s3://bucket/demand/\"]\nschedule = \"*/30 2-4 * * MON-FRI\"\ntime_zone = \"America/New_York\"\nauto_deploy = true\ndriver = \"raw_exec\"\ncommand = [\"/opt/venv/bin/nomadml\", \"retrain\"]\n\n[retraining.resources]\ncpu = 4000\nmemory = 8192\n"
        # Relative [data] paths are the spec file's: where it was when scheduled.
        NOMADML_SPEC_DIR    = "<spec-dir>"
      }
      resources {
        cpu    = 4000
        memory = 8192
      }

    }
  }
}
