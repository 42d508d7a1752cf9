job "iris-retrain" {
  type        = "batch"
  datacenters = ["*"]
  namespace   = "default"
  region      = "global"

  meta = {
    "nomadml.managed" = "true"
    "nomadml.model" = "iris"
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
        NOMADML_MODEL_NAME = "iris"
        NOMADML_AUTO_DEPLOY = "false"
        # The job carries its own spec: the run needs no file on the client.
        NOMADML_SPEC_TOML   = "# The iris model line: a softmax classifier trained on scikit-learn's iris data.\n# Every field below is optional except model.name; values shown are the defaults\n# unless a comment says otherwise. `nomadml validate examples/iris/iris.toml` checks it.\n\n[model]\nname = \"iris\"\ndescription = \"Iris species from sepal/petal measurements\"\nregistry = \"127.0.0.1:5000\"          # image registry holding the model images\n\n[serving]\ndriver = \"docker\"                    # or \"exec\" (runs command on the client host)\nimage = \"reference\"                  # nomadml's reference server; or your own image\ncommand = \"python3\"\nargs = [\"/opt/nomadml/serve.py\"]\nport = 0                             # 0 = dynamic port (needed for canaries on one node)\nhealth_path = \"/health\"\nmetrics_path = \"/metrics\"\ncount = 2                            # not the default (1)\nshutdown_delay = \"3s\"                # not the default (5s)\nkill_timeout = \"10s\"\nenv = { LOG_LEVEL = \"info\" }\n\n[serving.resources]\ncpu = 100                            # MHz; not the default (200)\nmemory = 128                         # MiB; not the default (256)\n\n[bootstrap.resources]\ncpu = 100\nmemory = 64                          # not the default (128)\n\n[placement]\ndatacenters = [\"*\"]\nnamespace = \"default\"\nregion = \"global\"\n\n[volume]\nname = \"models\"                      # the client's host_volume holding model files\n\n[update]\ncanary = 1\nmax_parallel = 1\nmin_healthy_time = \"3s\"              # not the default (10s)\nhealthy_deadline = \"1m\"              # not the default (3m)\nprogress_deadline = \"2m\"             # not the default (10m)\nauto_promote = false                 # nomadml promotes after its gates pass\nauto_revert = true\n\n[restart]\nattempts = 1\ninterval = \"5m\"\ndelay = \"3s\"\n\n[gates]\nhealth = true\nwindow = \"20s\"\ninterval = \"5s\"\nconsecutive_passes = 3\nmin_requests = 20\nmax_error_rate = 0.01\nmax_error_rate_increase = 0.01\nlatency_percentile = 0.95\nmax_latency_ms = 250.0\nmax_latency_ratio = 1.5\n\n[validation]\nmin_metrics = { accuracy = 0.9 }\nmax_regression = { accuracy = 0.02 }\nmax_size_mb = 10.0\nrequire_approval = false\n\n[lifecycle]\nkeep_majors = 2\npurge_retired = false\n\n[retraining]\nenabled = true\ntrainer = [\"python3\", \"-m\", \"examples.iris.train\"]\nschedule = \"0 3 * * *\"\ntime_zone = \"UTC\"\nauto_deploy = false\n"
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
