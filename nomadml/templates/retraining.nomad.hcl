[#- The retraining job: a Nomad periodic batch job per model line that trains a
    new candidate, registers it and runs the validation gates. prohibit_overlap
    keeps one run in flight per model line. With `dispatch`, the same job as a
    parameterized one the post-promotion guard dispatches. Extension point: train_extra. -#]
[% import "nomadml/_job.hcl" as job_meta -%]
[% macro data_mount() -%]
[%- if retraining.data_volume %]
      volume_mount {
        volume      = "training-data"
        destination = "/data"
        read_only   = true
      }
[%- endif %]
[%- endmacro -%]
job [[ job.id | hcl ]] {
  type        = "batch"
[[ job_meta.placement_and_meta(job) ]]

[%- if dispatch %]

  # Dispatched by the post-promotion guard after a regression ([guard] retrain). A job
  # cannot be both: Nomad never runs the schedule of a parameterized periodic job.
  parameterized {
    meta_optional = ["reason", "line", "regressed_version"]
  }
[%- else %]

  periodic {
    crons            = [[ [retraining.schedule] | hcl ]]
    time_zone        = [[ retraining.time_zone | hcl ]]
    prohibit_overlap = true
  }
[%- endif %]

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

[%- if retraining.driver == "docker" and retraining.nomadml_image %]

    # nomadml's task mounts the Docker engine's socket and scratch folders by host path:
    # only on clients whose docker driver allows it (plugin "docker" { config {
    # volumes { enabled = true } } }); schedule-retraining refuses when none does.
    constraint {
      attribute = "${attr.driver.docker.volumes.enabled}"
      value     = "true"
    }
[%- if retraining.data_volume %]

    # The [data] files, read-only in both tasks.
    volume "training-data" {
      type      = "host"
      source    = [[ retraining.data_volume | hcl ]]
      read_only = true
    }
[%- endif %]

    # The operator's trainer, in its own image: model files + metadata.json into the
    # allocation's data directory (shared by the group's tasks), exit 0.
    task "train" {
      driver = "docker"
      config {
        image        = [[ retraining.image | hcl ]]
        network_mode = "host"
        command = [[ retraining.trainer[0] | hcl ]]
        args    = [[ retraining.trainer[1:] | hcl ]]
      }[[ data_mount() ]]
      env = {
        NOMADML_MODEL_NAME = [[ model.name | hcl ]]
        NOMADML_OUTPUT_DIR = [[ "${NOMAD_ALLOC_DIR}/data" | hcl ]]
[%- for key, value in retraining.data_env | dictsort %]
        [[ key ]] = [[ value | hcl ]]
[%- endfor %]
      }
      resources {
        cpu    = [[ retraining.resources.cpu ]]
        memory = [[ retraining.resources.memory ]]
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
        image        = [[ retraining.nomadml_image | hcl ]]
        network_mode = "host"
        command = "nomadml"
        args    = [[ ["retrain", "--trained", "${NOMAD_ALLOC_DIR}/data", "--trainer-task", "train"] | hcl ]]
        # The Docker engine builds the model image and runs the serving images of the
        # evaluation; they mount scratch directories by the same path on the host.
        # The engine's registry CAs (certs.d) are nomadml's too.
        volumes = [[ [retraining.docker_socket ~ ":/var/run/docker.sock", "/var/tmp/nomadml-retraining:/var/tmp/nomadml-retraining", "/etc/docker/certs.d:/etc/docker/certs.d:ro"] | hcl ]]
      }[[ data_mount() ]]
      # docker login's config.json for the image registry, if the operator keeps it in
      # this job's own Nomad Variable (key docker_config): never in the job itself.
      # (Only named keys are read: a missing one must render nothing, not "<no value>".)
      template {
        data        = [[ ('{{ if nomadVarExists "nomad/jobs/' ~ job.id ~ '" }}{{ with nomadVar "nomad/jobs/' ~ job.id ~ '" }}{{ range $k, $v := . }}{{ if eq $k "docker_config" }}{{ $v }}{{ end }}{{ end }}{{ end }}{{ end }}') | hcl ]]
        destination = "secrets/docker/config.json"
        perms       = "0600"
      }
      # The webhook's HMAC secret (key webhook_secret of the same variable), as the
      # variable [notify] secret_env names.
      template {
        data        = [[ ('{{ if nomadVarExists "nomad/jobs/' ~ job.id ~ '" }}{{ with nomadVar "nomad/jobs/' ~ job.id ~ '" }}{{ range $k, $v := . }}{{ if eq $k "webhook_secret" }}' ~ spec.notify.secret_env ~ '={{ printf "%q" $v }}{{ end }}{{ end }}{{ end }}{{ end }}') | hcl ]]
        destination = "secrets/webhook.env"
        perms       = "0600"
        env         = true
      }
      env = {
        # Nomad's Task API with the task's workload identity: no token in the job, no
        # address or CA of the cluster's (ACL rights: the policy bound to this job).
        NOMAD_ADDR          = [[ "unix://${NOMAD_SECRETS_DIR}/api.sock" | hcl ]]
        TMPDIR              = "/var/tmp/nomadml-retraining"
        DOCKER_CONFIG       = [[ "${NOMAD_SECRETS_DIR}/docker" | hcl ]]
        NOMADML_MODEL_NAME  = [[ model.name | hcl ]]
        NOMADML_AUTO_DEPLOY = [[ (retraining.auto_deploy | string | lower) | hcl ]]
        NOMADML_SPEC_TOML   = [[ model.spec_text | hcl ]]
        NOMADML_SPEC_DIR    = [[ model.spec_dir | hcl ]]
      }
      resources {
        cpu    = 200
        memory = 256
      }
[% block nomadml_extra %][% endblock %]
    }
[%- else %]

    task "train" {
      driver = [[ retraining.driver | hcl ]]
      config {
[%- if retraining.driver == "docker" %]
        image        = [[ retraining.image | hcl ]]
        network_mode = "host"
[%- endif %]
        command = [[ retraining.command[0] | hcl ]]
        args    = [[ (retraining.command[1:] + retraining.args) | hcl ]]
      }
      env = {
        NOMADML_MODEL_NAME = [[ model.name | hcl ]]
        NOMADML_AUTO_DEPLOY = [[ (retraining.auto_deploy | string | lower) | hcl ]]
        # The job carries its own spec: the run needs no file on the client.
        NOMADML_SPEC_TOML   = [[ model.spec_text | hcl ]]
        # Relative [data] paths are the spec file's: where it was when scheduled.
        NOMADML_SPEC_DIR    = [[ model.spec_dir | hcl ]]
      }
      resources {
        cpu    = [[ retraining.resources.cpu ]]
        memory = [[ retraining.resources.memory ]]
      }
[% block train_extra %][% endblock %]
    }
[%- endif %]
  }
}
