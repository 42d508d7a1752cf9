# nomadml: the retraining job's workload identity. Registers, validates and (with
# auto_deploy) canaries the versions it trains: the model registry, the register lock,
# rollout records, and its model lines' jobs. Bind it to the job (no token in the job):
#   nomadml policy retraining | nomad acl policy apply -job <model>-retrain nomadml-retraining -
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

# The model service mounts the `models` host volume read-write (its bootstrap installs
# the model there): Nomad checks that whoever registers the job may mount it. Name your
# spec's [volume] source here if it is not `models`.
host_volume "models" {
  capabilities = ["mount-readwrite"]
}
