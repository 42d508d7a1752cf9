# nomadml: a viewer. Status, history, endpoints and the model registry, read-only.
namespace "default" {
  capabilities = ["list-jobs", "read-job", "read-logs"]

  variables {
    path "nomadml/*" {
      capabilities = ["read", "list"]
    }
  }
}
