[#- The model service job: one Nomad job per model line and major version.
    nomadml's delimiters are double square brackets for values and square
    bracket + percent for statements, so Nomad's own curly-brace templates and
    HCL's dollar-brace interpolation pass through untouched. -#]
job "[[ job.id ]]" {
  type        = "service"
  datacenters = [[ job.datacenters | hcl ]]
[%- if job.namespace %]
  namespace   = [[ job.namespace | hcl ]]
[%- endif %]
[%- if job.region %]
  region      = [[ job.region | hcl ]]
[%- endif %]

  # Ownership and provenance: nomadml refuses to overwrite a job without these.
  meta = {
[%- for key, value in job.meta | dictsort %]
    [[ key | hcl ]] = [[ value | hcl ]]
[%- endfor %]
  }

  update {
    max_parallel      = [[ update.max_parallel ]]
    canary            = [[ update.canary ]]
    health_check      = "checks"
    min_healthy_time  = [[ update.min_healthy_time | hcl ]]
    healthy_deadline  = [[ update.healthy_deadline | hcl ]]
    progress_deadline = [[ update.progress_deadline | hcl ]]
    auto_promote      = [[ update.auto_promote | hcl ]]
    auto_revert       = [[ update.auto_revert | hcl ]]
  }

  group "model" {
    count = [[ serving.count ]]

    network {
      port "http" {}
    }

    volume [[ volume.name | hcl ]] {
      type      = "host"
      source    = [[ volume.source | hcl ]]
      read_only = false
    }

    restart {
      attempts = [[ restart.attempts ]]
      interval = [[ restart.interval | hcl ]]
      delay    = [[ restart.delay | hcl ]]
      mode     = "fail"
    }

    service {
      provider = "nomad"
      name     = [[ service.name | hcl ]]
      port     = "http"
      tags     = [[ service.tags | hcl ]]
      meta {
[%- for key, value in service.meta | dictsort %]
        [[ key ]] = [[ value | hcl ]]
[%- endfor %]
      }
      check {
        name     = "health"
        type     = "http"
        path     = [[ serving.health_path | hcl ]]
        interval = [[ service.check_interval | hcl ]]
        timeout  = [[ service.check_timeout | hcl ]]
      }
    }

    # Installs this model version into <volume>/<model>/<version>/, verified
    # against its manifest; a no-op when that version is already installed.
    task "bootstrap" {
      lifecycle {
        hook    = "prestart"
        sidecar = false
      }
      driver = "docker"
      config {
        image        = [[ model.image | hcl ]]
        network_mode = "host"
        command      = "python3"
        args = [
          "/opt/nomadml/bootstrap.py", "install",
          "--source", "/model",
          "--volume", "/models",
          "--model", [[ model.name | hcl ]],
          "--version", [[ model.version | hcl ]],
        ]
      }
      volume_mount {
        volume      = [[ volume.name | hcl ]]
        destination = "/models"
      }
      resources {
        cpu    = [[ bootstrap.cpu ]]
        memory = [[ bootstrap.memory ]]
      }
    }

    task "serve" {
      driver = "docker"
      config {
        image        = [[ serving.image | hcl ]]
        network_mode = "host"
        command      = [[ serving.command | hcl ]]
        args         = [[ serving.args | hcl ]]
      }
      volume_mount {
        volume      = [[ volume.name | hcl ]]
        destination = "/models"
        read_only   = true
      }
      env = {
        NOMADML_MODEL_NAME    = [[ model.name | hcl ]]
        NOMADML_MODEL_VERSION = [[ model.version | hcl ]]
        NOMADML_MODEL_DIR     = [[ ("/models/" ~ model.name ~ "/" ~ model.version) | hcl ]]
[%- for key, value in serving.env | dictsort %]
        [[ key | hcl ]] = [[ value | hcl ]]
[%- endfor %]
      }
      # Deregister first, then keep serving in-flight requests for a moment.
      shutdown_delay = [[ serving.shutdown_delay | hcl ]]
      kill_timeout   = [[ serving.kill_timeout | hcl ]]
      resources {
        cpu    = [[ serving.cpu ]]
        memory = [[ serving.memory ]]
      }
    }
  }
}
