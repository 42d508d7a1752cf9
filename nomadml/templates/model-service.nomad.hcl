[#- The model service job: one Nomad job per model line and major version.
    nomadml's delimiters are double square brackets for values and square
    bracket + percent for statements, so Nomad's own curly-brace templates and
    HCL's dollar-brace interpolation pass through untouched.
    Extension points for operators' templates ([% extends %]): job_extra,
    group_extra, bootstrap_extra, serve_extra, serve_config_extra. -#]
[% import "nomadml/_job.hcl" as job_meta -%]
job [[ job.id | hcl ]] {
  type        = "service"
[[ job_meta.placement_and_meta(job, "Ownership and provenance: nomadml refuses to overwrite a job without these.") ]]

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
[% block job_extra %][% endblock %]
  group "model" {
    count = [[ serving.count ]]

    network {
[%- if serving.port %]
      port "http" {
        static = [[ serving.port ]]
      }
[%- else %]
      port "http" {}
[%- endif %]
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
      provider    = "nomad"
      name        = [[ service.name | hcl ]]
      port        = "http"
      tags        = [[ service.tags | hcl ]]
      canary_tags = [[ service.canary_tags | hcl ]]
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
[% block group_extra %][% endblock %]
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
        cpu    = [[ bootstrap.resources.cpu ]]
        memory = [[ bootstrap.resources.memory ]]
      }
[% block bootstrap_extra %][% endblock %]
    }

    task "serve" {
      driver = [[ serving.driver | hcl ]]
      config {
[%- if serving.driver == "docker" %]
        image        = [[ serving.image | hcl ]]
        network_mode = "host"
[%- endif %]
        command      = [[ serving.command | hcl ]]
        args         = [[ serving.args | hcl ]]
[% block serve_config_extra %][% endblock %]
      }
      volume_mount {
        volume      = [[ volume.name | hcl ]]
        destination = "/models"
        read_only   = true
      }
      env = {
        NOMADML_MODEL_NAME    = [[ model.name | hcl ]]
        NOMADML_MODEL_VERSION = [[ model.version | hcl ]]
        NOMADML_MODEL_DIR     = [[ model.path | hcl ]]
[%- for key, value in serving.env | dictsort %]
        [[ key ]] = [[ value | hcl ]]
[%- endfor %]
      }
      # Deregister first, then keep serving in-flight requests for a moment.
      shutdown_delay = [[ serving.shutdown_delay | hcl ]]
      kill_timeout   = [[ serving.kill_timeout | hcl ]]
      resources {
        cpu    = [[ serving.resources.cpu ]]
        memory = [[ serving.resources.memory ]]
      }
[% block serve_extra %][% endblock %]
    }
  }
}
