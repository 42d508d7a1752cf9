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

    # nomadml's task mounts the Docker engine's socket and scratch folders by host path:
    # only on clients whose docker driver allows it (plugin "docker" { config {
    # volumes { enabled = true } } }); schedule-retraining refuses when none does.
    constraint {
      attribute = "${attr.driver.docker.volumes.enabled}"
      value     = "true"
    }

    # The [data] files, read-only in both tasks.
    volume "training-data" {
      type      = "host"
      source    = "churn-data"
      read_only = true
    }

    # The operator's trainer, in its own image: model files + metadata.json into the
    # allocation's data directory (shared by the group's tasks), exit 0.
    task "train" {
      driver = "docker"
      config {
        image        = "registry.example.com/team/churn-trainer@sha256:1111111111111111111111111111111111111111111111111111111111111111"
        network_mode = "host"
        command = "python3"
        args    = ["/opt/train.py", "--rows", "$${NOMAD_ALLOC_DIR}"]
      }
      volume_mount {
        volume      = "training-data"
        destination = "/data"
        read_only   = true
      }
      env = {
        NOMADML_MODEL_NAME = "churn"
        NOMADML_OUTPUT_DIR = "$${NOMAD_ALLOC_DIR}/data"
        NOMADML_EVAL_DATA = "/data/2026-12/eval.csv"
        NOMADML_TRAIN_DATA = "/data/2026-12/train.csv"
      }
      resources {
        cpu    = 500
        memory = 512
      }
    }

    # nomadml's own steps, in the nomadml image, once the trainer has ended however it
    # ended: the trainer's exit as Nomad saw it, then data checks -> register ->
    # evaluation -> validation gates -> optional canary deploy.
    task "nomadml" {
      lifecycle {
        hook = "poststop"
      }
      identity {
        env = true
      }
      driver = "docker"
      config {
        image        = "127.0.0.1:5000/nomadml/nomadml@sha256:2222222222222222222222222222222222222222222222222222222222222222"
        network_mode = "host"
        command = "nomadml"
        args    = ["retrain", "--trained", "$${NOMAD_ALLOC_DIR}/data", "--trainer-task", "train"]
        # The Docker engine builds the model image and runs the serving images of the
        # evaluation; they mount scratch directories by the same path on the host.
        # The engine's registry CAs (certs.d) are nomadml's too.
        volumes = ["/run/docker.sock:/var/run/docker.sock", "/var/tmp/nomadml-retraining:/var/tmp/nomadml-retraining", "/etc/docker/certs.d:/etc/docker/certs.d:ro"]
      }
      volume_mount {
        volume      = "training-data"
        destination = "/data"
        read_only   = true
      }
      # docker login's config.json for the image registry, if the operator keeps it in
      # this job's own Nomad Variable (key docker_config): never in the job itself.
      # (Only named keys are read: a missing one must render nothing, not "<no value>".)
      template {
        data        = "{{ if nomadVarExists \"nomad/jobs/churn-retrain\" }}{{ with nomadVar \"nomad/jobs/churn-retrain\" }}{{ range $k, $v := . }}{{ if eq $k \"docker_config\" }}{{ $v }}{{ end }}{{ end }}{{ end }}{{ end }}"
        destination = "secrets/docker/config.json"
        perms       = "0600"
      }
      # The webhook's HMAC secret (key webhook_secret of the same variable), as the
      # variable [notify] secret_env names.
      template {
        data        = "{{ if nomadVarExists \"nomad/jobs/churn-retrain\" }}{{ with nomadVar \"nomad/jobs/churn-retrain\" }}{{ range $k, $v := . }}{{ if eq $k \"webhook_secret\" }}NOMADML_WEBHOOK_SECRET={{ printf \"%q\" $v }}{{ end }}{{ end }}{{ end }}{{ end }}"
        destination = "secrets/webhook.env"
        perms       = "0600"
        env         = true
      }
      env = {
        # Nomad's Task API with the task's workload identity: no token in the job, no
        # address or CA of the cluster's (ACL rights: the policy bound to this job).
        NOMAD_ADDR          = "unix://$${NOMAD_SECRETS_DIR}/api.sock"
        TMPDIR              = "/var/tmp/nomadml-retraining"
        DOCKER_CONFIG       = "$${NOMAD_SECRETS_DIR}/docker"
        NOMADML_MODEL_NAME  = "churn"
        NOMADML_AUTO_DEPLOY = "false"
        NOMADML_SPEC_TOML   = "# The operator's trainer in its own image; nomadml's steps in the nomadml image.\n[model]\nname = \"churn\"\nregistry = \"127.0.0.1:5000\"\n\n[retraining]\nenabled = true\ndriver = \"docker\"\nimage = \"registry.example.com/team/churn-trainer@sha256:1111111111111111111111111111111111111111111111111111111111111111\"\ntrainer = [\"python3\", \"/opt/train.py\", \"--rows\", \"$${NOMAD_ALLOC_DIR}\"]\nnomadml_image = \"127.0.0.1:5000/nomadml/nomadml@sha256:2222222222222222222222222222222222222222222222222222222222222222\"\ndocker_socket = \"/run/docker.sock\"\ndata_volume = \"churn-data\"\n\n[data]\ntrain = \"2026-12/train.csv\"\nevaluation = \"2026-12/eval.csv\"\nlabel = \"churned\"\n"
        NOMADML_SPEC_DIR    = "/data"
      }
      resources {
        cpu    = 200
        memory = 256
      }

    }
  }
}
