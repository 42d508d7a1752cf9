# nomadml: a CI deployer. Plans, deploys, promotes and rolls back model lines; reads
# the model registry and settles the stages a rollout decides (production, rejected);
# takes the per-job register lock and writes rollout records. Nothing else.
namespace "default" {
  capabilities = ["list-jobs", "read-job", "submit-job", "parse-job", "read-logs"]

  variables {
    path "nomadml/models/*" {
      capabilities = ["read", "list", "write"]
    }
    path "nomadml/rollouts/*" {
      capabilities = ["read", "list", "write"]
    }
    path "nomadml/locks/*" {
      capabilities = ["read", "write", "destroy"]
    }
  }
}
