job "churn-retrain" {
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
        NOMADML_MODEL_NAME = "churn"
        NOMADML_AUTO_DEPLOY = "false"
        # The job carries its own spec: the run needs no file on the client.
        NOMADML_SPEC_TOML   = "# Data checks before every retraining: declared columns, ranges, missing values,\n# minimum rows, label balance, and the operator's own check command.\n[model]\nname = \"churn\"\n\n[data]\ntrain = \"/srv/data/churn/train.csv\"\nevaluation = \"/srv/data/churn/eval.csv\"\nlabel = \"churned\"\n\n[data.checks]\nmin_rows = 1000\ncolumns = { tenure_months = \"int\", monthly_fee = \"float\", plan = \"str\", churned = \"bool\" }\nmin = { tenure_months = 0.0, monthly_fee = 0.0 }\nmax = { tenure_months = 600.0 }\nmax_missing = 0.02\nmin_class_share = 0.05\ncommand = [\"/opt/checks/bin/check-churn-data\", \"--strict\"]\n\n[retraining]\nenabled = true\ntrainer = [\"/opt/venv/bin/python\", \"-m\", \"churn.train\"]\n\n[lifecycle]\nexpire_after = \"168h\"\n\n[gates.judge]\nenabled = true\nalpha = 0.005\nerror_increase = 0.02\nslow_increase = 0.1\nlatency = false\ndeadline = \"15m\"\non_inconclusive = \"fail\"\n\n[update]\nsteps = [10, 50, 100]\n\n# A shadow phase before the steps: 25% of the line's requests mirrored to the canary.\n[update.shadow]\nshare = 25\nmin_agreement = 0.98\nmin_requests = 200\nmax_latency_ms = 80.0\ntimeout = \"3m\"\ncompare = \"labels\"\ntolerance = 1e-6  # numbers agree within it (absolute or relative); labels stay exact\n"
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
