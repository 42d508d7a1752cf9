job "replaced-v1" {
  datacenters = ["*"]
  meta        = { "nomadml.managed" = "true", "nomadml.model" = "replaced", "nomadml.spec_hash" = "<spec-hash>", "nomadml.tool_version" = "<tool-version>", "nomadml.major" = "1", "nomadml.version" = "1.2.0", "nomadml.image" = "127.0.0.1:5000/nomadml/models/replaced@sha256:4f2a6c1e9b8d7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a29", "nomadml.image_digest" = "sha256:4f2a6c1e9b8d7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a29" }

  group "model" {
    count = 1

    task "serve" {
      driver = "docker"
      config {
        image = "127.0.0.1:5000/nomadml/serve:<reference-tag>"
        args  = ["/opt/nomadml/serve.py"]
      }
      meta = { "accuracy" = 0.9, "$${oops}" = 0.5 }
    }
  }
}
