# nomadml: a model router's workload identity. The router's template renders HAProxy's
# configuration from the model's routing table (a Nomad Variable nomadml writes) and
# from the model's services in Nomad's catalog; a task reads its own namespace's
# services without a policy, but a variable outside nomad/jobs/<job> only with one.
# Read the routing tables, nothing else. Bind it to each model's router job (a policy
# binds to one job, so one name per model; no token in the job):
#   nomadml policy router | nomad acl policy apply -namespace default -job <model>-router nomadml-router-<model> -
# Narrower still: replace * by the model's name.
namespace "default" {
  variables {
    path "nomadml/routes/*" {
      capabilities = ["read"]
    }
  }
}
