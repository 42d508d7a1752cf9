job "churn-v4" {
  type        = "service"
  datacenters = ["eu-west-1a", "eu-west-1b"]
  namespace   = "ml-prod"
  region      = "eu-west"

  # Ownership and provenance: nomadml refuses to overwrite a job without these.
  meta = {
    "nomadml.image" = "registry.example.com:5443/nomadml/models/churn@sha256:4f2a6c1e9b8d7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a29"
    "nomadml.image_digest" = "sha256:4f2a6c1e9b8d7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a29"
    "nomadml.major" = "4"
    "nomadml.managed" = "true"
    "nomadml.model" = "churn"
    "nomadml.spec_hash" = "<spec-hash>"
    "nomadml.tool_version" = "<tool-version>"
    "nomadml.version" = "4.0.2"
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
    count = 3

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
      name        = "churn-v4"
      port        = "http"
      tags        = ["nomadml", "model=churn", "major=4", "version=4.0.2"]
      canary_tags = ["nomadml", "model=churn", "major=4", "version=4.0.2", "canary"]
      meta {
        major = "4"
        model = "churn"
        version = "4.0.2"
      }
      check {
        name     = "health"
        type     = "http"
        path     = "/health"
        interval = "2s"
        timeout  = "1s"
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
        image        = "registry.example.com:5443/nomadml/models/churn@sha256:4f2a6c1e9b8d7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a29"
        network_mode = "host"
        command      = "python3"
        args = [
          "/opt/nomadml/bootstrap.py", "install",
          "--source", "/model",
          "--volume", "/models",
          "--model", "churn",
          "--version", "4.0.2",
        ]
      }
      volume_mount {
        volume      = "models"
        destination = "/models"
      }
      resources {
        cpu    = 250
        memory = 96
      }

    }

    task "serve" {
      driver = "docker"
      config {
        image        = "registry.example.com:5443/team/xgb-server:2.3.1"
        network_mode = "host"
        command      = "/app/bin/serve"
        args         = []

      }
      volume_mount {
        volume      = "models"
        destination = "/models"
        read_only   = true
      }
      env = {
        NOMADML_MODEL_NAME    = "churn"
        NOMADML_MODEL_VERSION = "4.0.2"
        NOMADML_MODEL_DIR     = "/models/churn/4.0.2"
        _PRIVATE = ""
        LOG_LEVEL = "debug"
        OMP_NUM_THREADS = "4"
      }
      # Deregister first, then keep serving in-flight requests for a moment.
      shutdown_delay = "15s"
      kill_timeout   = "45s"
      resources {
        cpu    = 1500
        memory = 2048
      }

    }
  }
}
