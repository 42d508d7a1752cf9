job "churn-retrain-dispatch" {
  type        = "batch"
  datacenters = ["*"]
  namespace   = "default"
  region      = "global"

  meta = {
    "nomadml.managed" = "true"
    "nomadml.model" = "churn"
    "nomadml.role" = "retraining"
    "nomadml.spec_hash" = "<spec-hash>"
    "nomadml.tool_version" = "<tool-version>"
  }

  # Dispatched by the post-promotion guard after a regression ([guard] retrain). A job
  # cannot be both: Nomad never runs the schedule of a parameterized periodic job.
  parameterized {
    meta_optional = ["reason", "line", "regressed_version"]
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
        NOMADML_MODEL_NAME = "churn"
        NOMADML_AUTO_DEPLOY = "false"
        # The job carries its own spec: the run needs no file on the client.
        NOMADML_SPEC_TOML   = "# The post-promotion guard: a 15-minute bake judged with thresholds, an alert only, and\n# retraining dispatched after a regression (the parameterized twin of the retraining job).\n[model]\nname = \"churn\"\n\n[retraining]\nenabled = true\ntrainer = [\"/opt/venv/bin/python\", \"-m\", \"churn.train\"]\n\n[guard]\nbake = \"15m\"\ncompare = \"thresholds\"\non_regression = \"alert\"\nretrain = true\n"
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
