job "fraud-score-v3" {
  type        = "service"
  datacenters = ["*"]
  namespace   = "default"
  region      = "global"

  # Ownership and provenance: nomadml refuses to overwrite a job without these.
  meta = {
    "nomadml.image" = "127.0.0.1:5000/nomadml/models/fraud-score@sha256:4f2a6c1e9b8d7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a29"
    "nomadml.image_digest" = "sha256:4f2a6c1e9b8d7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a29"
    "nomadml.major" = "3"
    "nomadml.managed" = "true"
    "nomadml.model" = "fraud-score"
    "nomadml.spec_hash" = "<spec-hash>"
    "nomadml.tool_version" = "<tool-version>"
    "nomadml.version" = "3.1.4"
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
      name        = "fraud-score-v3"
      port        = "http"
      tags        = ["nomadml", "model=fraud-score", "major=3", "version=3.1.4"]
      canary_tags = ["nomadml", "model=fraud-score", "major=3", "version=3.1.4", "canary"]
      meta {
        major = "3"
        model = "fraud-score"
        version = "3.1.4"
      }
      check {
        name     = "health"
        type     = "http"
        path     = "/healthz"
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
        image        = "127.0.0.1:5000/nomadml/models/fraud-score@sha256:4f2a6c1e9b8d7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a29"
        network_mode = "host"
        command      = "python3"
        args = [
          "/opt/nomadml/bootstrap.py", "install",
          "--source", "/model",
          "--volume", "/models",
          "--model", "fraud-score",
          "--version", "3.1.4",
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
      driver = "exec"
      config {
        command      = "/usr/local/bin/serve-model"
        args         = ["--listen", "0.0.0.0", "--workers", "2"]

      }
      volume_mount {
        volume      = "models"
        destination = "/models"
        read_only   = true
      }
      env = {
        NOMADML_MODEL_NAME    = "fraud-score"
        NOMADML_MODEL_VERSION = "3.1.4"
        NOMADML_MODEL_DIR     = "/models/fraud-score/3.1.4"
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
