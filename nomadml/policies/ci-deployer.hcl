# nomadml: a CI deployer. Plans, deploys, promotes and rolls back model lines; reads
# the model registry and settles the stages a rollout decides (production, rejected);
# takes the per-job register lock and writes rollout records; moves a line's weights at
# its model's router (canary steps, rollback by routing). Nothing else.
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
    path "nomadml/routes/*" {
      capabilities = ["read", "write"]
    }
  }
}

# The model service mounts the `models` host volume read-write (its bootstrap installs
# the model there): Nomad checks that whoever registers the job may mount it. Name your
# spec's [volume] source here if it is not `models`.
host_volume "models" {
  capabilities = ["mount-readwrite"]
}
