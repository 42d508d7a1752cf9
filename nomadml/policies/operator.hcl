# nomadml: an operator. Everything nomadml does, in one namespace: deploy, promote,
# roll back, retire majors, schedule retraining, and the model registry (Nomad
# Variables under nomadml/). Apply: nomadml policy operator | nomad acl policy apply -description "nomadml operator" nomadml-operator -
namespace "default" {
  policy       = "write"
  capabilities = ["list-jobs", "read-job", "submit-job", "parse-job", "read-logs", "dispatch-job"]

  variables {
    path "nomadml/*" {
      capabilities = ["read", "list", "write", "destroy"]
    }
  }
}

node {
  policy = "read"
}

# The model service mounts the `models` host volume read-write (its bootstrap installs
# the model there): Nomad checks that whoever registers the job may mount it. Name your
# spec's [volume] source here if it is not `models`.
host_volume "models" {
  capabilities = ["mount-readwrite"]
}
