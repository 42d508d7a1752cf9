job "extended-v1" {
  type        = "service"
  datacenters = ["*"]
  namespace   = "default"
  region      = "global"

  # Ownership and provenance: nomadml refuses to overwrite a job without these.
  meta = {
    "nomadml.image" = "127.0.0.1:5000/nomadml/models/extended@sha256:4f2a6c1e9b8d7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a29"
    "nomadml.image_digest" = "sha256:4f2a6c1e9b8d7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a29"
    "nomadml.major" = "1"
    "nomadml.managed" = "true"
    "nomadml.model" = "extended"
    "nomadml.spec_hash" = "<spec-hash>"
    "nomadml.tool_version" = "<tool-version>"
    "nomadml.version" = "1.2.0"
  }

  update {
    max_parallel      = 1
    canary            = 1
    health_check      = "checks"
    min_healthy_time  = "10s"
    healthy_deadline  = "3m"
    progress_deadline = "10m"
    auto_promote      = false
    auto_revert       = true
  }

  group "model" {
    count = 1

    network {
      port "http" {}
    }

    volume "models" {
      type      = "host"
      source    = "models"
      read_only = false
    }

    restart {
      attempts = 1
      interval = "5m"
      delay    = "5s"
      mode     = "fail"
    }

    service {
      provider    = "nomad"
      name        = "extended-v1"
      port        = "http"
      tags        = ["nomadml", "model=extended", "major=1", "version=1.2.0"]
      canary_tags = ["nomadml", "model=extended", "major=1", "version=1.2.0", "canary"]
      meta {
        major = "1"
        model = "extended"
        version = "1.2.0"
      }
      check {
        name     = "health"
        type     = "http"
        path     = "/health"
        interval = "2s"
        timeout  = "1s"
      }
    }
    # operator block in the group

    # Installs this model version into <volume>/<model>/<version>/, verified
    # against its manifest; a no-op when that version is already installed.
    task "bootstrap" {
      lifecycle {
        hook    = "prestart"
        sidecar = false
      }
      driver = "docker"
      config {
        image        = "127.0.0.1:5000/nomadml/models/extended@sha256:4f2a6c1e9b8d7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a29"
        network_mode = "host"
        command      = "python3"
        args = [
          "/opt/nomadml/bootstrap.py", "install",
          "--source", "/model",
          "--volume", "/models",
          "--model", "extended",
          "--version", "1.2.0",
        ]
      }
      volume_mount {
        volume      = "models"
        destination = "/models"
      }
      resources {
        cpu    = 100
        memory = 128
      }

    }

    task "serve" {
      driver = "docker"
      config {
        image        = "127.0.0.1:5000/nomadml/serve:<reference-tag>"
        network_mode = "host"
        command      = "python3"
        args         = ["/opt/nomadml/serve.py"]

      }
      volume_mount {
        volume      = "models"
        destination = "/models"
        read_only   = true
      }
      env = {
        NOMADML_MODEL_NAME    = "extended"
        NOMADML_MODEL_VERSION = "1.2.0"
        NOMADML_MODEL_DIR     = "/models/extended/1.2.0"
      }
      # Deregister first, then keep serving in-flight requests for a moment.
      shutdown_delay = "5s"
      kill_timeout   = "10s"
      resources {
        cpu    = 200
        memory = 256
      }

    }
  }
}
